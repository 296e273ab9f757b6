"""bgresample: outlier-aware classifiers trained with adversarially resampled background data.

Implements Li & Vasconcelos, "Background Data Resampling for Outlier-Aware Classification",
CVPR 2020.
"""

__version__ = "0.1.0"
