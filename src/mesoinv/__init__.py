"""mesoinv: inverse problems of mesoscopic quantum transport with machine learning.

Stages, one subpackage each: :mod:`mesoinv.physics` (Kwant simulations),
:mod:`mesoinv.datasets` (samples, netCDF files), then models, training and evaluation.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mesoinv")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
