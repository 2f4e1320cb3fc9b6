# -*- coding: utf-8 -*-
# Copyright: docker-userns maintainers
# SPDX-License-Identifier: MIT
"""Test-only Ansible callback (tests/real_host_fleet.rs): saves each host's result of the
docker_userns.docker_userns.remap task as JSON, to compare its diff with `plan --json`."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: save_results
type: aggregate
short_description: Save each host's docker_userns.docker_userns.remap result as JSON
description:
  - Writes the result of the module's task for host H to DIR/H.json (ok, changed or failed),
    DIR from the environment variable FLEET_RESULTS_DIR.
requirements:
  - enabled with callbacks_enabled (ANSIBLE_CALLBACKS_ENABLED=save_results)
"""

import json
import os

from ansible.plugins.callback import CallbackBase

MODULE = "docker_userns.docker_userns.remap"


class CallbackModule(CallbackBase):
    """Saves the remap task's result per host."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "save_results"
    CALLBACK_NEEDS_ENABLED = True

    def _save(self, result, status):
        if result._task.action != MODULE:
            return
        out = dict(result._result)
        out["_status"] = status
        path = os.path.join(os.environ["FLEET_RESULTS_DIR"], result._host.get_name() + ".json")
        with open(path, "w") as f:
            json.dump(out, f)

    def v2_runner_on_ok(self, result):
        self._save(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._save(result, "failed")
