"""salign: ESPnet-based speech translation that closes the speech-text modality gap."""
from setuptools import find_packages, setup

setup(
    name="salign",
    version="0.1.0",
    description="S-Align and related modality-alignment methods for end-to-end speech translation on ESPnet",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["salign", "salign.*"]),
    python_requires=">=3.10",
    # Installed by tools/install.sh in a fixed order (torch first, espnet --no-deps); listed here for reference.
    install_requires=[
        "espnet==202511",
        "torch>=2.1",
        "kaldiio>=2.18.0",
        "kaldi-native-fbank>=1.20",
        "sentencepiece",
        "sacrebleu>=2.4",
        "jiwer>=3.0",
        "numpy>=2.0",
        "PyYAML>=5.1",
    ],
    license="Apache-2.0",
)
