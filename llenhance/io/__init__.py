"""Every byte that enters or leaves llenhance as a picture: reading, writing, spooling, formats.

Import from the module that does the job (this package re-exports nothing, so importing one
module does not load the others):

* :mod:`~llenhance.io.formats` -- the one table of formats: extensions, alpha, bit depths, side
  limits, metadata kept, signatures.
* :mod:`~llenhance.io.files` -- which paths are input images (files, folders, glob patterns).
* :mod:`~llenhance.io.read` -- :func:`read_image`, :func:`read_rgb`, :func:`spool_image`.
* :mod:`~llenhance.io.decode` -- which decoder reads a file, and the errors before either does.
* :mod:`~llenhance.io.decode_vips` -- libvips, a band of rows at a time: every format it loads.
* :mod:`~llenhance.io.decode_pillow` -- Pillow, whole: BMP and what else libvips cannot load.
* :mod:`~llenhance.io.limits` -- the pixel limit (decompression-bomb protection), Pillow's too.
* :mod:`~llenhance.io.metadata` -- :class:`ImageInfo`, EXIF orientation, ICC profiles.
* :mod:`~llenhance.io.spool` -- :class:`SpooledImage`: pixels kept in a temporary file.
* :mod:`~llenhance.io.write` -- :class:`ImageWriter`, :func:`write_image`, output checks.
* :mod:`~llenhance.io.guard` -- the one guarded writer every output file goes through.
* :mod:`~llenhance.io.encoder` -- the base of the streaming encoders; the codecs
  :mod:`~llenhance.io.png`, :mod:`~llenhance.io.tiff`, :mod:`~llenhance.io.jpeg`,
  :mod:`~llenhance.io.webp`, :mod:`~llenhance.io.bmp`.
"""
