"""Two guarded fixes that let LeRobot 0.6's VLAs run on the transformers installed here.

LeRobot 0.6 declares ``transformers>=5.4,<5.6``; this environment has a newer one (pyproject
pins none), and two things LeRobot relies on changed after 5.5:

- ``DynamicCache.crop(n)`` with ``n > 0`` meant "keep the first ``n`` tokens"; it now raises
  (only ``crop(-n)``, "remove ``n``", is accepted). SmolVLA's denoising loop calls
  ``crop(prefix_len)`` after every step.
- ``masking_utils.create_causal_mask`` lost its ``cache_position`` argument, which LeRobot's
  ``PiGemmaModel`` (pi0, pi0.5) passes. pi0 always hands it a ready 4D mask, which
  ``create_causal_mask`` returns as-is, so dropping the argument changes nothing.

Each fix is probed, not version-matched: it is installed only where the installed transformers
actually behaves the new way, into LeRobot's module only, once. The real fix is to pin
transformers to LeRobot's range (``lerobot[smolvla,pi]`` does); then both are no-ops.
"""

from __future__ import annotations

import inspect


def ensure_compatible(policy_type: str) -> None:
    """Install the fixes ``policy_type``'s LeRobot code needs with this transformers."""
    if policy_type == "smolvla":
        _smolvla_absolute_crop()
    elif policy_type in ("pi0", "pi05"):
        _pi_gemma_mask_without_cache_position()


def _smolvla_absolute_crop() -> None:
    import torch
    from lerobot.policies.smolvla import smolvlm_with_expert as module
    from transformers import DynamicCache

    if getattr(module.DynamicCache, "vla_dojo_absolute_crop", False):
        return
    probe = DynamicCache()
    probe.update(torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 2, 1), 0)
    try:
        probe.crop(1)
        return  # the old meaning still works: nothing to fix
    except ValueError:
        pass

    class AbsoluteCropCache(DynamicCache):
        """``crop(n)`` with ``n > 0`` keeps the first ``n`` tokens, as before transformers 5.6."""

        vla_dojo_absolute_crop = True

        def crop(self, max_length: int) -> None:
            if max_length > 0:
                max_length -= self.get_seq_length()
                if max_length >= 0:
                    return
            super().crop(max_length)

    module.DynamicCache = AbsoluteCropCache


def _pi_gemma_mask_without_cache_position() -> None:
    from lerobot.policies import pi_gemma as module

    original = module.create_causal_mask
    if original is None or getattr(original, "vla_dojo_compat", False):
        return
    if "cache_position" in inspect.signature(original).parameters:
        return  # the argument still exists: nothing to fix

    def create_causal_mask(*args, cache_position=None, **kwargs):
        return original(*args, **kwargs)

    create_causal_mask.vla_dojo_compat = True
    module.create_causal_mask = create_causal_mask
