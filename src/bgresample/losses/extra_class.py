"""An extra (K+1)-th "background" class (the absent-category idea of e.g. Chen et al., ATOM,
ECML 2021): the classifier gets K+1 outputs, ID images keep targets 0..K-1, background images
get target K, and the loss on background data is plain cross entropy to class K."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.losses.uniformity import Reduction
from bgresample.scores.checks import check_logits


def extra_class_loss(logits: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Cross entropy of ``(N, K+1)`` logits to the last class, K (``reduction`` as in eq. 4's)."""
    check_logits(logits)
    target = torch.full((len(logits),), logits.shape[-1] - 1, device=logits.device)
    return F.cross_entropy(logits, target, reduction=reduction)


def add_background_class(model: nn.Module, num_classes: int) -> None:
    """Give a classifier with ``num_classes`` outputs a (K+1)-th output in place: its ``fc`` keeps
    the K trained rows and gets a zero row (weight and bias) for the background class. A model
    that already has K+1 outputs is left as it is. Raises ValueError for a model without
    such a head or with another number of outputs."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(
            f"model must have a final linear head fc (nn.Linear) to add the background class "
            f"to; model {name} has none (use another loss, or a model with fc)"
        )
    if fc.out_features == num_classes + 1:
        return
    if fc.out_features != num_classes:
        raise ValueError(
            f"the model has {fc.out_features} outputs; the extra_class loss needs "
            f"{num_classes} (ID classes) or {num_classes + 1}"
        )
    head = nn.Linear(fc.in_features, num_classes + 1, bias=fc.bias is not None)
    head.to(device=fc.weight.device, dtype=fc.weight.dtype)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[:num_classes] = fc.weight
        if fc.bias is not None:
            head.bias.zero_()
            head.bias[:num_classes] = fc.bias
    model.fc = head
