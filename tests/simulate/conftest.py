"""One small generated shop for every simulator test (generating it takes a second)."""

from __future__ import annotations

import pytest

from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.simulate import ShopSimulator


@pytest.fixture(scope="package")
def shop() -> SyntheticShop:
    return generate_shop(20_000, seed=1)


@pytest.fixture()
def sim(shop: SyntheticShop) -> ShopSimulator:
    return ShopSimulator(shop, seed=0)
