"""Names and defaults the command line shows in its help, in a module that imports nothing.

``llenhance --help`` and ``--version`` read these without importing torch, NumPy or OpenCV;
tests check that they equal the values the library uses (the architecture registry,
:data:`llenhance.tiling.DEFAULT_TILE`, :data:`llenhance.io.write.PNG_COMPRESSION`).
"""

#: The model ``enhance`` uses without --model: the best val PSNR among the models that enhance a
#: 512x512 image in under 1.5 s on a 2-core CPU (numbers in docs/models.md).
DEFAULT_MODEL = "unet-res"

#: Every model name, the default first (:func:`llenhance.archs.model_names`).
MODEL_NAMES = (
    DEFAULT_MODEL,
    "unet-res-large",
    "cgnet",
    "dncnn",
    "histnet",
    "llid",
    "mirnet",
    "se-resnet",
)

#: Tile size in pixels for models that do not ask for a smaller one.
DEFAULT_TILE = 1024

#: PNG and TIFF zlib level.
PNG_COMPRESSION = 3

#: Share of ``train --data`` held out for validation when neither --val nor --val-split is given
#: (:attr:`llenhance.training.TrainConfig.val_split`).
DEFAULT_VAL_SPLIT = 0.1
