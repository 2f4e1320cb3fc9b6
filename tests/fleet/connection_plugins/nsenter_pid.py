# -*- coding: utf-8 -*-
# Copyright: docker-userns maintainers
# SPDX-License-Identifier: MIT
"""Test-only Ansible connection plugin (tests/real_host_fleet.rs): runs a task inside a booted
systemd-nspawn test host from the machine that boots it, with `nsenter -t PID -a`, the way
tests/testhost/testhost.sh runs commands there. Not part of the collection: a fleet uses ssh."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: nsenter_pid
short_description: Run tasks in a local container's namespaces with nsenter
description:
  - Every command runs as C(nsenter -t PID -a -- env -i PATH=... /bin/sh -c CMD), in all the
    namespaces of the process PID (the container's init) and its root directory, with a clean
    environment; files go in and out through C(cat) run the same way.
  - Needs root on the controller and util-linux's nsenter.
author: docker-userns maintainers
options:
  nsenter_pid:
    description: PID, on the controller, of the container's init.
    type: int
    required: true
    vars:
      - name: ansible_nsenter_pid
"""

import os
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.connection import ConnectionBase

INNER_ENV = [
    "env",
    "-i",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
]


class Connection(ConnectionBase):
    """nsenter into the container whose init is ansible_nsenter_pid."""

    transport = "nsenter_pid"
    has_pipelining = True

    def _connect(self):
        self._connected = True
        return self

    def _argv(self, argv):
        pid = self.get_option("nsenter_pid")
        if not os.path.exists("/proc/%d" % int(pid)):
            raise AnsibleConnectionFailure("nsenter_pid: no process %s on the controller" % pid)
        return ["nsenter", "-t", str(int(pid)), "-a", "--"] + INNER_ENV + argv

    def _run(self, argv, stdin=None, stdout=subprocess.PIPE):
        # cwd /: nsenter -a enters the container's root, where the controller's cwd may not exist.
        return subprocess.Popen(
            self._argv(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd="/",
        )

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._display.vvv("EXEC %s" % cmd, host=self._play_context.remote_addr)
        proc = self._run(["/bin/sh", "-c", cmd], stdin=subprocess.PIPE)
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as src:
            proc = self._run(["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], stdin=src)
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            raise AnsibleConnectionFailure("failed to put %s to %s: %s" % (in_path, out_path, stderr))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as dest:
            proc = self._run(["cat", "--", in_path], stdout=dest)
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            raise AnsibleConnectionFailure("failed to fetch %s to %s: %s" % (in_path, out_path, stderr))

    def close(self):
        self._connected = False
