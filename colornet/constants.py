"""Facts of the method as published and released, each with its source.

Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016 (arXiv 1603.08511);
release: github.com/richzhang/colorization (Caffe branch and PyTorch port).
"""

# The 313 quantised ab bins (`resources/pts_in_hull.npy` of the release): for each
# a on a grid of 10, every b from b_min to b_max in steps of 10, ordered by a then b.
# No gamut rule reproduces the released set exactly, so the table is the source.
AB_BIN_TABLE = (
    # (a, b_min, b_max)
    (-90, 50, 90),
    (-80, 20, 90),
    (-70, 0, 90),
    (-60, -20, 90),
    (-50, -30, 100),
    (-40, -40, 100),
    (-30, -50, 100),
    (-20, -50, 100),
    (-10, -60, 100),
    (0, -70, 100),
    (10, -80, 90),
    (20, -80, 90),
    (30, -90, 90),
    (40, -100, 90),
    (50, -100, 80),
    (60, -110, 80),
    (70, -110, 80),
    (80, -110, 70),
    (90, -110, 70),
    (100, -90, 0),
)
AB_GRID_STEP = 10.0  # ab units between neighbouring bin centres
NUM_BINS = 313  # Q in the paper

# Soft-encoding (paper Sec. 2.1; release `caffe_traininglayers.py`). The paper says
# k = 5; the released training used k = 10 (maintainer, issue #59).
SOFT_ENCODE_K = 5
SOFT_ENCODE_SIGMA = 5.0  # ab units; Gaussian on squared distance

# Class rebalancing (paper Eq. 4): mix the smoothed prior with uniform.
PRIOR_SIGMA = 5.0  # ab units; Gaussian smoothing of the empirical ab distribution
PRIOR_LAMBDA = 0.5

# Images whose every |a|, |b| at target resolution is <= this get zero weight
# (release `NonGrayMaskLayer`).
GREY_THRESHOLD = 5.0

# Annealed-mean decoding (paper Sec. 2.3). The release deploy net scales logits by
# 2.606, i.e. T ~ 0.384.
ANNEALED_MEAN_TEMPERATURE = 0.38
CAFFE_DEPLOY_LOGIT_SCALE = 2.606
# Ways to turn the 313 logits into ab (paper Sec. 2.3, Fig. 3): the annealed mean,
# the mean (T = 1) and the mode (T -> 0).
DECODE_METHODS = ("annealed-mean", "mean", "mode")

# CIE Lab with the D65 white and sRGB companding, as scikit-image (which the
# release uses to build its data) defines them.
D65_WHITE = (0.95047, 1.0, 1.08883)
XYZ_FROM_LINEAR_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
SRGB_LINEAR_THRESHOLD = 0.04045  # companded value below which sRGB is linear
SRGB_ENCODE_THRESHOLD = 0.0031308  # linear value below which sRGB is linear
LAB_EPSILON = 0.008856  # (6/29)^3, as rounded by scikit-image
LAB_KAPPA_SLOPE = 7.787  # slope of the linear part of f(t), as in scikit-image
LAB_F_THRESHOLD = 0.2068966  # f(LAB_EPSILON), as in scikit-image

# Network input: the Caffe release feeds L - 50; the PyTorch port (L - 50) / 100.
L_CENTER = 50.0

# Training data (release `train/solver.prototxt` and data layers).
TRAIN_RESIZE = 256  # shorter side before cropping
TRAIN_CROP = 176
OUTPUT_STRIDE = 4  # the ab target is every 4th pixel of the input's ab

# Largest image decoded, width x height: 50 megapixels, 150 MB as RGB (200 MB while
# an alpha channel is still attached). Every real photograph we expect is far
# smaller (ImageNet averages 0.2 MP; a 2024 phone camera gives 12 to 50 MP), while
# a bomb declares gigapixels in a few bytes of header. Read by `data.images` and the CLI.
MAX_PIXELS = 50_000_000

# `colornet prepare` (data/tfrecords.py): shards when it chooses their number itself,
# and the JPEG quality of images it downscales (`resize=N`).
IMAGES_PER_SHARD = 1024
PREPARE_JPEG_QUALITY = 95
