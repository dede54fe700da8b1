"""Which build a worker says it is, and whether it runs versioned (common/versioning.py)."""

import pytest
from temporalio.common import VersioningBehavior

from common import __version__, versioning


def test_an_explicit_build_id_wins():
    v = versioning.Versioning.from_env(versioning.ORDER_DEPLOYMENT, {"WORKER_BUILD_ID": "2026-12-07.1"})
    assert (v.deployment_name, v.build_id, v.enabled) == ("order-service", "2026-12-07.1", True)


def test_without_one_the_build_is_the_package_version_and_commit():
    commit = versioning._git("rev-parse", "--short=10", "HEAD")
    build = versioning.build_id({})
    assert build == __version__ if not commit else build.startswith(f"{__version__}-{commit}")


def test_versioned_workers_pin_every_workflow_they_run():
    config = versioning.Versioning("order-service", "b1").worker_config()
    assert config is not None and config.use_worker_versioning
    assert config.default_versioning_behavior == VersioningBehavior.PINNED
    assert config.version.build_id == "b1"


def test_versioning_can_be_turned_off_and_deployments_named_apart():
    env = {"WORKER_VERSIONING": "off", "WORKER_DEPLOYMENT_PREFIX": "t1-", "WORKER_BUILD_ID": "x"}
    v = versioning.Versioning.from_env(versioning.SHIPPING_DEPLOYMENT, env)
    assert v.deployment_name == "t1-shipping-service" and v.worker_config() is None
    with pytest.raises(SystemExit):
        versioning.Versioning.from_env(versioning.ORDER_DEPLOYMENT, {"WORKER_VERSIONING": "maybe"})
