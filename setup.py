"""fairseq-erpo: the ERPO family of sequence-training algorithms as a fairseq plugin."""
from setuptools import find_packages, setup

setup(
    name="fairseq-erpo",
    version="0.1.0",
    description=(
        "Entropy-regularized policy optimization (Tan et al., 2019: MLE, RAML, SPG, data noising, "
        "MIXER, scheduled sampling, interpolation) as fairseq criterions, task and rewards"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fairseq_erpo", "fairseq_erpo.*"]),
    python_requires=">=3.8",
    install_requires=[
        # Both provide `import fairseq`. Official fairseq 0.12.2 does not import on Python 3.11
        # (dataclass mutable defaults, hydra-core 1.0); fairseq-fixed is fairseq main rebuilt for it.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        # Install torch first (scripts/env.sh does): a bare requirement on a machine without torch
        # makes pip pull the newest CUDA build, several GB, even on a CPU-only box.
        "torch>=1.13",
        "sacrebleu>=2.0",
        "rouge-score>=0.1.2",
        "sentencepiece",
        "subword-nmt",
        "sacremoses",
        # compiled CPU kernels for sentence-level BLEU/ROUGE (the CUDA path is plain torch)
        "numba>=0.59",
    ],
    extras_require={
        "test": ["pytest>=7"],
        "plots": ["matplotlib"],
    },
)
