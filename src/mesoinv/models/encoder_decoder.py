"""P1's convolutional encoder-decoder (Percebois & Weinmann 2021, Sec. IV B, App. A 3, Fig. 11).

Image in, image out: the PLDOS map → the disorder potential V(x, y) on the same grid.

* Encoder: three blocks of [conv, conv, conv, 2× max-pool];
* decoder: three blocks of [conv, conv, conv, 2× upsample];
* ReLU between all layers (P1 Eq. A3); 48 feature maps at the bottleneck in the paper;
* a final 3 × 3 convolution to one output channel, without activation (the min–max
  normalised potential, P1 Eq. A2, is a real number; a ReLU there would clip it).

Sizes that do not divide by 8. Three poolings need nx and ny divisible by 2³. Instead of
refusing other maps, the input is padded with zeros (the normalised value of no signal,
after the input transform) up to the next multiple of 8, split evenly between both sides
of each axis (the extra site, if odd, at the far side), and the output is cropped back to
the input's (nx, ny). Padding and cropping are exact inverses on the grid
(:meth:`EncoderDecoder.pad` / :meth:`EncoderDecoder.crop`).

Layout: ``(batch, channels, nx, ny)`` → ``(batch, 1, nx, ny)``.
"""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EncoderDecoder", "padding_for"]


def padding_for(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) zero padding that brings ``size`` to the next multiple of ``multiple``."""
    extra = (-int(size)) % multiple
    return extra // 2, extra - extra // 2


def _convs(in_channels: int, out_channels: int, count: int, kernel_size: int) -> list:
    layers, channels = [], in_channels
    for _ in range(count):
        layers += [nn.Conv2d(channels, out_channels, kernel_size, padding=kernel_size // 2),
                   nn.ReLU(inplace=True)]
        channels = out_channels
    return layers


class EncoderDecoder(nn.Module):
    """Convolutional encoder-decoder from maps to the potential (P1 Fig. 11).

    Parameters
    ----------
    image_shape : (int, int)
        (nx, ny) of input and output in sites (any size ≥ 1; see the module docstring).
    in_channels : int
        Input channels (PLDOS fields).
    encoder_channels : sequence of int
        Filters of the convolutions of each encoder block; the last is the number of feature
        maps at the bottleneck (P1: 48). The decoder uses them in reverse order.
    convs_per_block : int
        Convolutions per block (P1: 3).
    kernel_size : int
        Odd square kernel.
    """

    def __init__(self, image_shape, in_channels: int = 1, *, encoder_channels=(16, 32, 48),
                 convs_per_block: int = 3, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        self.image_shape = tuple(int(v) for v in image_shape)
        self.multiple = 2 ** len(encoder_channels)
        encoder, channels = [], in_channels
        for out in encoder_channels:
            encoder += _convs(channels, out, convs_per_block, kernel_size)
            encoder.append(nn.MaxPool2d(2))
            channels = out
        decoder = []
        for out in reversed(encoder_channels):
            decoder += _convs(channels, out, convs_per_block, kernel_size)
            decoder.append(nn.Upsample(scale_factor=2, mode="nearest"))
            channels = out
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.output = nn.Conv2d(channels, 1, kernel_size, padding=kernel_size // 2)
        # He initialisation for the ReLU convolutions: with PyTorch's default (gain 1/√3) the
        # signal shrinks through 18 plain conv layers and training stalls at a constant output.
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d) and layer is not self.output:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def pad(self, image: torch.Tensor) -> torch.Tensor:
        """Zero-pad (…, nx, ny) to multiples of 2^blocks (even split, extra site at the end)."""
        (x0, x1), (y0, y1) = (padding_for(s, self.multiple) for s in image.shape[-2:])
        return F.pad(image, (y0, y1, x0, x1))

    def crop(self, image: torch.Tensor, shape) -> torch.Tensor:
        """Undo :meth:`pad` for an original (nx, ny) = ``shape``."""
        (x0, _), (y0, _) = (padding_for(s, self.multiple) for s in shape)
        return image[..., x0:x0 + shape[0], y0:y0 + shape[1]]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, nx, ny) normalised map → (batch, 1, nx, ny) normalised V."""
        shape = tuple(image.shape[-2:])
        return self.crop(self.output(self.decoder(self.encoder(self.pad(image)))), shape)
