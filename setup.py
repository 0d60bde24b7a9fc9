import re

from setuptools import find_packages, setup

# One version, kept in colornet/version.py (read as text: setup.py must not import the package).
with open("colornet/version.py", encoding="utf-8") as f:
    VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

# The documentation site (mkdocs.yml): pinned, so that `mkdocs build --strict` gives the
# same warnings (and so the same verdict) everywhere; tests/test_docs_site.py builds it.
DOCS = ["mkdocs==1.6.1", "mkdocs-material==9.8.2", "mkdocstrings[python]==1.0.8", "mkdocstrings-python==2.0.11"]

setup(
    # The import name is `colornet`; the distribution's is not, as `colornet` on PyPI is
    # another project's.
    name="colornet-keras",
    version=VERSION,
    description="Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016) in TensorFlow/Keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["colornet", "colornet.*"]),
    package_data={"colornet": ["assets/*"], "colornet.web": ["static/*"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21",
        "keras>=3.15",
        "numpy",
        "ml_dtypes",  # bfloat16 and float8 arrays read from PyTorch checkpoints (colornet.weights.pth)
        "absl-py",
        "tensorboard",  # training logs; TF 2.21 no longer pulls it in
        "scikit-image",  # `colornet demo`: its bundled public-domain/CC0 sample photos
        "pillow",  # EXIF orientation of JPEG files (colornet.data.images); scikit-image needs it too
    ],
    extras_require={
        "plot": ["matplotlib"],
        "bench": ["scikit-learn"],
        # TF Serving warm-up requests, gRPC client (serving/client.py --grpc)
        "serving": ["tensorflow-serving-api==2.21.*", "grpcio"],
        "tflite": ["ai-edge-litert", "pillow"],  # running .tflite models; serving/tflite_colorize.py
        # Video (colornet.apps.video): PyAV's wheels bring FFmpeg with libx264 and AAC and give
        # frames as arrays in-process; OpenCV for the camera's motion and the colour conversions;
        # Numba compiles the loops over every pixel of a frame (apps/video/kernels.py);
        # LiteRT runs the bundled model's int8 form on CPUs without AMX.
        "video": ["av>=18", "opencv-python-headless", "numba", "ai-edge-litert"],
        "docs": DOCS,
        # `colornet app`: Starlette (routing, forms, static files) served by uvicorn;
        # python-multipart parses uploads; videos go through the video extra's packages.
        "app": ["starlette>=0.40", "uvicorn>=0.30", "python-multipart", "av>=18", "opencv-python-headless",
                "numba", "ai-edge-litert"],
        "test": [
            "pytest",
            # tests/test_packaging.py: builds the wheel and sdist, checks their metadata.
            "build",
            "twine",
            # The oracle of colornet.weights.pth and the importer tests (colornet itself reads
            # .pth files without it); .ci/run installs this version from a local wheel.
            "torch==2.13.0",
            "scikit-image",
            "matplotlib",
            "scikit-learn",
            "tensorflow-serving-api==2.21.*",
            "grpcio",
            "ai-edge-litert",
            "pillow",
            "hypothesis",
            "av>=18",
            "opencv-python-headless",
            "numba",
            # The tfds: source, tested with a local builder (nothing downloaded).
            # tensorflow-datasets 4.9.10 imports importlib_resources without declaring it.
            "tensorflow-datasets",
            "importlib_resources",
            *DOCS,
            "starlette>=0.40",
            "uvicorn>=0.30",
            "python-multipart",
            "httpx",  # Starlette's TestClient
            # Drives Debian's Chromium (.ci/run installs it); its own browser builds are never downloaded.
            "playwright",
        ],
    },
    entry_points={"console_scripts": ["colornet = colornet.cli:launch"]},
)
