"""P1's Fourier-coefficient CNN (Percebois & Weinmann 2021, Sec. IV A, App. A 2, Fig. 10).

The network regresses the Fourier coefficients C_j of the disorder potential (P1 Eq. 1) from
a PLDOS map: real and imaginary parts of every coefficient, so ``2 N`` outputs for ``N``
complex coefficients. Compared with the two-parameter CNN (Fig. 9) it has

* 5 × 5 filters in the first block, 3 × 3 after;
* BatchNorm and ReLU after every convolution and after the dense layer ("between all the
  layers", Fig. 10). A training batch of one sample cannot be batch-normalised: the data
  module drops such a last batch (:class:`mesoinv.training.p1_data.ImageDataModule`);
* one dense layer (800 neurons in the paper) before the output layer.

Fig. 10 shows one block [conv 5 × 5, BN, max-pool] followed by a block [conv, BN, max-pool]
"repeated two times": three blocks, three 2× poolings. The filter counts are not given;
they are keyword arguments (docs/models.md).

Layout: ``(batch, channels, nx, ny)`` → ``(batch, 2 N)``, standardised inputs (A1) and
standardised coefficients; the statistics live in the model file, the rebuild of V(x, y)
from the coefficients in :mod:`mesoinv.training.targets` (with the simulator's own Eq. 1).
"""

import torch
from torch import nn

__all__ = ["ConvBNBlock", "FourierCNN"]


class ConvBNBlock(nn.Sequential):
    """conv → BatchNorm → ReLU → 2 × 2 max-pool ("same" padding; the pool halves the size)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      bias=False),  # BatchNorm's shift makes a bias redundant
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


class FourierCNN(nn.Module):
    """CNN regression of the 2 N real numbers of N complex Fourier coefficients (P1 Fig. 10).

    Parameters
    ----------
    image_shape : (int, int)
        (nx, ny) of the input map in sites; each at least 8 (three 2× poolings).
    in_channels : int
        Input channels (one per magnetic field of the PLDOS).
    n_outputs : int
        2 N: real parts then imaginary parts of the N coefficients.
    conv_channels : sequence of int
        Filters of each block; the first block uses ``first_kernel_size``.
    first_kernel_size, kernel_size : int
        Odd square kernels of the first and of the later blocks (P1: 5 and 3).
    dense_units : int
        Width of the single dense layer (P1: 800).
    """

    def __init__(self, image_shape, in_channels: int = 1, n_outputs: int = 2, *,
                 conv_channels=(32, 64, 128), first_kernel_size: int = 5, kernel_size: int = 3,
                 dense_units: int = 800):
        super().__init__()
        nx, ny = (int(v) for v in image_shape)
        n_blocks = len(conv_channels)
        if min(nx, ny) < 2**n_blocks:
            raise ValueError(f"image {nx} × {ny} is too small for {n_blocks} 2× poolings")
        if first_kernel_size % 2 != 1 or kernel_size % 2 != 1:
            raise ValueError("kernel sizes must be odd ('same' padding), got "
                             f"{first_kernel_size} and {kernel_size}")
        blocks, channels = [], in_channels
        for index, out in enumerate(conv_channels):
            blocks.append(ConvBNBlock(channels, out,
                                      first_kernel_size if index == 0 else kernel_size))
            channels = out
        self.features = nn.Sequential(*blocks)
        flat = channels * (nx // 2**n_blocks) * (ny // 2**n_blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, dense_units, bias=False),  # BatchNorm's shift replaces the bias
            nn.BatchNorm1d(dense_units),
            nn.ReLU(inplace=True),
            nn.Linear(dense_units, n_outputs),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, nx, ny) standardised map → (batch, 2 N) standardised."""
        return self.head(self.features(image))
