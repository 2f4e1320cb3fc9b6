#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: docker-userns maintainers
# SPDX-License-Identifier: MIT
"""docker_userns.docker_userns.remap: runs docker-userns with --json on the target."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: remap
short_description: Turn Docker user-namespace remapping on or off with docker-userns
description:
  - Runs C(docker-userns enable) or C(docker-userns disable) with C(--json) and reports
    C(changed) exactly when the tool changed something.
  - In check mode runs C(docker-userns plan) (C(plan --disable) for I(state=disabled)) and
    changes nothing.
  - With C(--diff) returns, in Ansible's diff format, the changes to /etc/docker/daemon.json,
    /etc/subuid, /etc/subgid and the remap user. In check mode these are the exact bytes the
    tool will write, as C(plan --json) renders them with the writers C(enable) and C(disable)
    use (its C(files)); this module renders no file itself. In a real run they are the files as
    they were before and are after.
  - A failure reports the tool's message, its exit code, its error kind (whether the host was
    rolled back) and, for a refusal, the tool's typed reason (C(refusal)).
options:
  state:
    description: C(enabled) runs C(enable), C(disabled) runs C(disable).
    type: str
    choices: [enabled, disabled]
    default: enabled
  user:
    description: The remap user (C(--user)).
    type: str
    default: dockremap
  count:
    description: Size of the subordinate ranges (C(--count)); unset, login.defs.
    type: int
  start:
    description: The remap range must start here (C(--start)).
    type: int
  repair:
    description: Move an overlapping remap range with its data root (C(--repair)).
    type: bool
    default: false
  carry:
    description: What to carry across the switch (C(--carry)).
    type: list
    elements: str
    choices: [images, volumes]
    default: []
  settle:
    description: Seconds docker must stay up after its restart (C(--settle)).
    type: int
    default: 10
  timeout:
    description: Seconds for each systemd job and the health gate (C(--timeout)).
    type: int
    default: 90
  jobs:
    description:
      - Threads walking a tree whose owners are shifted (C(--jobs)) - the data root of I(repair),
        each volume of I(carry=volumes). Unset, the number of cores.
    type: int
  allow_restart_with_containers:
    description: Restart docker even when containers run (C(--yes)).
    type: bool
    default: false
  restart:
    description: False converges the files only (C(--no-restart)).
    type: bool
    default: true
  binary:
    description: Path of docker-userns on the target.
    type: path
    default: /usr/sbin/docker-userns
notes:
  - Needs the docker-userns package on the target (the role C(docker_userns.docker_userns.docker_userns)
    installs it from a .deb); runs as root (C(become)).
  - Supports check mode and diff mode.
requirements:
  - docker-userns on the target (the package of the same version as this collection)
author: docker-userns maintainers (!UNKNOWN)
version_added: "0.1.0"
"""

EXAMPLES = r"""
- name: Turn user-namespace remapping on (restarts docker, verifies, rolls back on failure)
  docker_userns.docker_userns.remap:
    state: enabled
  register: remap

- name: Turn it on for another remap user, carrying images along, with a fixed range
  docker_userns.docker_userns.remap:
    state: enabled
    user: remap2
    start: 300000
    count: 65536
    carry: [images]

- name: Converge the files only; docker applies them at its next start
  docker_userns.docker_userns.remap:
    restart: false

- name: Turn it off again
  docker_userns.docker_userns.remap:
    state: disabled
"""

RETURN = r"""
cmd:
  description: The docker-userns command line that ran.
  type: list
  elements: str
  returned: when docker-userns ran
  sample: [/usr/sbin/docker-userns, --json, enable, --user, dockremap, --timeout, "90", --settle, "10"]
rc:
  description: Exit code of docker-userns.
  type: int
  returned: when docker-userns ran
result:
  description: >-
    The JSON document docker-userns printed (see README "JSON output"); in check mode its
    C(files) list every file the run would write with its bytes now and after.
  type: dict
  returned: always
  sample: {"changed": true, "outcome": "enabled"}
stderr:
  description: What docker-userns wrote to stderr (its progress and, on failure, its message).
  type: str
  returned: on failure
refusal:
  description: For a refusal (exit 3), the tool's typed reason (kind, path, line, message).
  type: dict
  returned: when docker-userns refused
"""

import base64
import json
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

DAEMON_JSON = "/etc/docker/daemon.json"


def read_text(path):
    """Content of a file, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def passwd_line(name):
    """The user's /etc/passwd entry as a line, or None."""
    try:
        p = pwd.getpwnam(name)
    except KeyError:
        return None
    return "%s:x:%d:%d:%s:%s:%s\n" % (p.pw_name, p.pw_uid, p.pw_gid, p.pw_gecos, p.pw_dir, p.pw_shell)


def snapshot(user, subuid, subgid):
    """What the diff of a real run shows, as found now: {label: text or None}."""
    return {
        DAEMON_JSON: read_text(DAEMON_JSON),
        subuid: read_text(subuid),
        subgid: read_text(subgid),
        "user " + user: passwd_line(user),
    }


def file_text(entry, field):
    """A content field of one of plan's `files` entries as text (None: the file is absent).

    The tool gives text, or base64 when the bytes are not UTF-8; such bytes are shown with
    U+FFFD (Ansible's diff is text)."""
    value = entry.get(field)
    if value is None or entry.get("encoding", "utf-8") == "utf-8":
        return value
    return base64.b64decode(value).decode("utf-8", "replace")


def planned_diff(doc, user):
    """Ansible's diff for check mode: the tool's own `files` (plan --json), as they are."""
    out = []
    for entry in doc.get("files") or []:
        path = entry["path"]
        before = file_text(entry, "before")
        note = " (planned)" if entry.get("encoding", "utf-8") == "utf-8" else " (planned; not UTF-8)"
        out.append(
            {
                "before_header": path if before is not None else "%s (absent)" % path,
                "after_header": path + note,
                "before": before or "",
                "after": file_text(entry, "after"),
            }
        )
    if (doc.get("user") or {}).get("create"):
        # useradd writes the account files; it picks the uid, so only the name is known.
        out.append(
            {
                "before_header": "user %s (absent)" % user,
                "after_header": "user %s (planned)" % user,
                "before": "",
                "after": "%s (a new system user; useradd picks its uid)\n" % user,
            }
        )
    return out


def diff_list(before, after):
    """Ansible's diff format for a real run, one entry per thing that differs."""
    out = []
    for label, old in before.items():
        new = after.get(label)
        if old == new:
            continue
        out.append(
            {
                "before_header": label if old is not None else "%s (absent)" % label,
                "after_header": label if new is not None else "%s (absent)" % label,
                "before": old or "",
                "after": new or "",
            }
        )
    return out


def argv(p, check_mode):
    """The docker-userns command line for these parameters."""
    user_opts = ["--user", p["user"]]
    if p["count"]:
        user_opts += ["--count", str(p["count"])]
    if p["start"]:
        user_opts += ["--start", str(p["start"])]
    if p["repair"]:
        user_opts.append("--repair")
    cmd = [p["binary"], "--json"]
    if check_mode:
        return cmd + (["plan"] + user_opts if p["state"] == "enabled" else ["plan", "--disable"])
    cmd += ["enable"] + user_opts if p["state"] == "enabled" else ["disable"]
    cmd += ["--timeout", str(p["timeout"]), "--settle", str(p["settle"])]
    if p["jobs"]:
        cmd += ["--jobs", str(p["jobs"])]
    if p["carry"]:
        cmd += ["--carry", ",".join(p["carry"])]
    if p["allow_restart_with_containers"]:
        cmd.append("--yes")
    if not p["restart"]:
        cmd.append("--no-restart")
    return cmd


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="enabled", choices=["enabled", "disabled"]),
            user=dict(type="str", default="dockremap"),
            count=dict(type="int"),
            start=dict(type="int"),
            repair=dict(type="bool", default=False),
            carry=dict(type="list", elements="str", default=[], choices=["images", "volumes"]),
            settle=dict(type="int", default=10),
            timeout=dict(type="int", default=90),
            jobs=dict(type="int"),
            allow_restart_with_containers=dict(type="bool", default=False),
            restart=dict(type="bool", default=True),
            binary=dict(type="path", default="/usr/sbin/docker-userns"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    check = module.check_mode

    if not os.path.exists(p["binary"]):
        if check:
            # The play installs the package first (docker_userns_deb), which check mode does not.
            msg = (
                "%s is not installed yet: it would be installed, then run; `plan` needs it, "
                "so what it would change cannot be shown" % p["binary"]
            )
            module.warn(msg)
            module.exit_json(changed=True, result={}, msg=msg)
        module.fail_json(
            msg="%s not found: install the docker-userns package (docker_userns_deb)" % p["binary"]
        )

    user = p["user"]
    before = None if check else snapshot(user, "/etc/subuid", "/etc/subgid")
    cmd = argv(p, check)
    rc, stdout, stderr = module.run_command(cmd)
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    # The tool's document says what happened: an error document, or the outcome (also when
    # the switch was made but --carry did not carry everything).
    error = doc.get("error")
    done = bool(doc) and error is None
    changed = done and bool(doc.get("changed"))

    result = dict(changed=changed, rc=rc, result=doc, cmd=cmd)
    if module._diff and done:
        if check:
            if "files" not in doc:
                module.warn(
                    "%s is older than this module: its plan does not carry the bytes it would write "
                    "(no files in plan --json), so the diff cannot show them; install the package "
                    "that comes with this role" % p["binary"]
                )
            result["diff"] = planned_diff(doc, user)
        else:
            # The ranges' files as the tool names them (paths inside the root: always /etc here).
            result["diff"] = diff_list(before, snapshot(user, "/etc/subuid", "/etc/subgid"))

    if rc != 0:
        # What happened comes from the document: its error kind (rolled-back, conflict, ...),
        # or an outcome whose carry did not complete (the switch itself was made).
        failed = (doc.get("carry") or {}).get("failed")
        if error is None and failed:
            kind = "carry-incomplete"
            what = "SWITCHED, CARRY INCOMPLETE: remapping changed, but not everything was carried; the next run carries the rest"
            message = "not carried: " + "; ".join(failed)
        else:
            error = error or {"kind": "failure", "message": stderr.strip()}
            kind = error.get("kind", "failure")
            what = kind.upper().replace("-", " ")
            message = error.get("message", "")
            if error.get("refusal"):
                result["refusal"] = error["refusal"]
        result["msg"] = "docker-userns failed (exit %d, %s); %s. %s" % (rc, kind, what, message)
        result["stderr"] = stderr
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
