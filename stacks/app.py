"""The CDK app: validate the deployment config, then build every stack of both regions and run the compliance packs.

`cdk synth` runs `python3 -m stacks.app` (cdk.json); tests, the synth benchmark and the sandbox's drift test call
`build_app(context)` instead. The config is validated before any stack exists, so a bad value writes no template:
its one-line errors go to stderr and the process exits 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks

from dr_runbooks.config import CONFIG_KEYS, ConfigError, DeploymentConfig
from stacks.estate import build_estate
from stacks.lambda_asset import AssetNotBuilt

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The context `cdk synth` would see from the project's cdk.json, with `-c`-style overrides on top."""
    return {**json.loads(CDK_JSON.read_text())["context"], **(overrides or {})}


def build_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    """The whole estate as a CDK App, with the HIPAA Security and AWS Solutions packs registered.

    `context=None` reads the context the CDK CLI passes (cdk.json plus `-c`). Raises `ConfigError` before any
    stack is made.
    """
    app = cdk.App(
        context=dict(context) if context is not None else None,
        outdir=outdir,
        # CDK's built-in template validation re-does what cfn-lint checks in the test suite, at 10 s CPU a synth.
        builtin_cloud_formation_validation=False,
    )
    config = DeploymentConfig.from_context({key: app.node.try_get_context(key) for key in CONFIG_KEYS})
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), HIPAASecurityChecks(app))
    build_estate(app, config)
    return app


def main(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> None:
    """What `cdk synth` runs (no arguments: the CLI passes context and output dir); tests pass them directly."""
    try:
        app = build_app(context, outdir)
    except ConfigError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    except AssetNotBuilt as error:  # `python -m stacks.app` run without the CLI's build step, offline
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    app.synth()


if __name__ == "__main__":
    main()
