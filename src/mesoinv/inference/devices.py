"""Where a network runs: ``--device auto|cpu|cuda`` of ``mesoinv predict`` and ``evaluate``.

``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error
(one line, before anything is read or written). The noise of P2's generation is drawn on the
CPU either way (one ``torch.Generator`` per trace), so the seeds mean the same on both; the
images agree between CPU and GPU up to floating-point rounding, not bit for bit.
"""

DEVICE_CHOICES = ("auto", "cpu", "cuda")

__all__ = ["DEVICE_CHOICES", "resolve_device"]


def resolve_device(device: str | None) -> str:
    """``auto``/``cpu``/``cuda`` (None = ``cpu``) → ``cpu`` or ``cuda``.

    Raises
    ------
    ValueError
        An unknown name, or ``cuda`` where torch sees no GPU.
    """
    import torch

    device = "cpu" if device is None else str(device)
    if device not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    if device == "cuda" and not available:
        raise ValueError("--device cuda: torch sees no CUDA GPU on this machine "
                         "(use --device cpu, or auto)")
    return device
