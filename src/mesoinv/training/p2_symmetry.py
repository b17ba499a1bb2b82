"""Mirror augmentation of P2 training pairs: one trace, every mirror image of its LDOS.

G(B) is unchanged by the wire's mirrors x → −x and y → −y (:mod:`mesoinv.physics.antidots`,
p2.md §6), and with the disorder potential mirrored too a mirror maps one sample (placement,
potential, trace, B = 0 LDOS) onto another exactly: the trace stays, the LDOS image and the
antidots mirror. The dataset stores one representative per symmetry class; this augmentation
shows the model, for the same trace, the image of any of the (up to four) mirror images, so it
learns p(LDOS | G) as the mixture over the class's mirror images that the trace actually
determines, and the evaluation scores it modulo the mirrors (``mirrors`` criterion).

Translations along the wire are *not* applied: with disorder, a translated sample would need
the potential of sites outside the scattering region (the clean leads), and the LDOS near the
region's ends depends on where the leads begin; a shifted image is not a sample of the system.

Images are ``(B, 1, image_x, y)`` with ``image_x = W + 2p`` (the wire padded by ``p`` zero
columns on each side): the x mirror is a flip of the padded axis (column i + p ↔ W − 1 − i + p),
the y mirror a flip of the last axis. Draws are a pure function of (seed, global step), so a
resumed run continues the same sequence.
"""

import torch

__all__ = ["MIRROR_AUGMENTATIONS", "mirror_images", "draw_mirrors", "MirrorAugmentation"]

MIRROR_AUGMENTATIONS = ("none", "mirrors")


def mirror_images(images: torch.Tensor, mirror_x: torch.Tensor, mirror_y: torch.Tensor):
    """Each image mirrored by its own flags.

    Parameters
    ----------
    images : Tensor (B, C, image_x, y)
    mirror_x, mirror_y : bool Tensor (B,)

    Returns
    -------
    Tensor, same shape: image b flipped along image_x where mirror_x[b], along y where
    mirror_y[b].
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, image_x, y), got shape {tuple(images.shape)}")
    mx = mirror_x.to(images.device).view(-1, 1, 1, 1)
    my = mirror_y.to(images.device).view(-1, 1, 1, 1)
    out = torch.where(mx, images.flip(-2), images)
    return torch.where(my, out.flip(-1), out)


def draw_mirrors(batch_size: int, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mirror_x, mirror_y) flags, each True with probability 1/2, from (seed, step) only."""
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % 2**63)
    flags = torch.rand(2, batch_size, generator=generator) < 0.5
    return flags[0], flags[1]


class MirrorAugmentation:
    """Callable ``(images, traces, step) → (mirrored images, traces)``; traces unchanged."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def __call__(self, images: torch.Tensor, traces: torch.Tensor, step: int):
        mirror_x, mirror_y = draw_mirrors(images.shape[0], self.seed, step)
        return mirror_images(images, mirror_x, mirror_y), traces
