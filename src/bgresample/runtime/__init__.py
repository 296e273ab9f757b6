"""The runtime every training and selection loop runs on, below ``selectors/`` and ``engine/``:
the accelerator and data placement (``accel``), seeded ID and background batches (``batches``),
forward passes and their outputs (``forward``), what a stage runs with (``env``) and the
classifier's optimiser and schedules (``optim``)."""
