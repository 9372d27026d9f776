"""The ``conv="onednn"`` path as an ``interleaved_ab.py`` variant: oneDNN for the 64-channel layers, im2col
for the first."""
import jaxmeta.models.conv as conv
from jaxmeta.models.onednn_conv import conv3x3_onednn

library_im2col = conv.conv3x3_im2col


def onednn(x, kernel):
    if 9 * x.shape[-1] < kernel.shape[-1]:
        return library_im2col(x, kernel)
    return conv3x3_onednn(x, kernel)

