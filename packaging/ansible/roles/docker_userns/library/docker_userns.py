#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: docker-userns maintainers
# SPDX-License-Identifier: MIT
"""Ansible module of the docker_userns role: runs docker-userns with --json on the target."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: docker_userns
short_description: Turn Docker user-namespace remapping on or off with docker-userns
description:
  - Runs C(docker-userns enable) or C(docker-userns disable) with C(--json) and reports
    C(changed) exactly when the tool changed something.
  - In check mode runs C(docker-userns plan) (C(status) for I(state=disabled)) and changes nothing.
  - With C(--diff) returns, in Ansible's diff format, the changes to /etc/docker/daemon.json,
    /etc/subuid, /etc/subgid and the remap user (in check mode as C(plan) reports them; in a real
    run as the files are before and after).
  - A failure reports the tool's message, its exit code and whether the host was rolled back.
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
    default: []
  settle:
    description: Seconds docker must stay up after its restart (C(--settle)).
    type: int
    default: 10
  timeout:
    description: Seconds for each systemd job and the health gate (C(--timeout)).
    type: int
    default: 90
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
author: docker-userns maintainers
"""

RETURN = r"""
rc:
  description: Exit code of docker-userns.
  type: int
  returned: when docker-userns ran
result:
  description: The JSON document docker-userns printed (see README "JSON output").
  type: dict
  returned: always
"""

import json
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

DAEMON_JSON = "/etc/docker/daemon.json"
KEY = "userns-remap"

ROLLBACK = {
    3: "nothing was changed",
    5: "ROLLED BACK: the files were restored and docker runs with the previous settings",
    6: "ROLLBACK INCOMPLETE: manual action needed; the next docker-userns run retries it",
    8: "SWITCHED, CARRY INCOMPLETE: remapping changed, but not everything was carried; "
    "the next run carries the rest",
}


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
    """What the diff shows, as found now: {label: text or None}."""
    return {
        DAEMON_JSON: read_text(DAEMON_JSON),
        subuid: read_text(subuid),
        subgid: read_text(subgid),
        "user " + user: passwd_line(user),
    }


def detect_indent(text):
    """The indentation of a daemon.json, as docker-userns keeps it (two spaces by default)."""
    for line in (text or "").splitlines()[1:]:
        ws = line[: len(line) - len(line.lstrip())]
        if ws:
            if set(ws) <= {" "} or set(ws) <= {"\t"}:
                return ws
            break
    return "  "


def render_daemon_json(doc, indent):
    """daemon.json as docker-userns writes it: pretty, keys in order, newline-ended."""
    return json.dumps(doc, indent=indent, ensure_ascii=False) + "\n"


def subid_after(text, user, rng):
    """An /etc/subuid (subgid) after the change `plan` reports for it (`add`, `moved_from`)."""
    text = text or ""
    line = "%s:%d:%d\n" % (user, rng["start"], rng["count"])
    if rng.get("moved_from") is None:
        if text and not text.endswith("\n"):
            text += "\n"
        return text + line
    # --repair/--start: the user's lines are replaced by one, where the first of them was.
    out, placed = [], False
    for old in text.splitlines(True):
        if old.split(":", 1)[0] == user and not old.lstrip().startswith("#"):
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(old)
    if not placed:
        out.append(line)
    return "".join(out)


def predicted(before, user, doc, state):
    """What the files would look like after the change the plan (or status) reports."""
    after = dict(before)
    current = before[DAEMON_JSON]
    if state == "enabled":
        if doc.get("daemon_json_change", "none") != "none":
            after[DAEMON_JSON] = render_daemon_json(doc["daemon_json"], detect_indent(current))
        for which in ("subuid", "subgid"):
            rng = doc.get(which) or {}
            if rng.get("add"):
                path = rng.get("file") or "/etc/" + which
                after[path] = subid_after(before.get(path), user, rng)
        if (doc.get("user") or {}).get("create"):
            after["user " + user] = "%s (a new system user; useradd picks its uid)\n" % user
    elif doc.get("remapping_configured") is not None and current is not None:
        try:
            parsed = json.loads(current)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and KEY in parsed:
            del parsed[KEY]
            after[DAEMON_JSON] = render_daemon_json(parsed, detect_indent(current))
    return after


def diff_list(before, after, note):
    """Ansible's diff format, one entry per thing that differs."""
    out = []
    for label, old in before.items():
        new = after.get(label)
        if old == new:
            continue
        out.append(
            {
                "before_header": label if old is not None else "%s (absent)" % label,
                "after_header": label + note if new is not None else "%s (absent)" % label,
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
        return cmd + (["plan"] + user_opts if p["state"] == "enabled" else ["status"])
    cmd += ["enable"] + user_opts if p["state"] == "enabled" else ["disable"]
    cmd += ["--timeout", str(p["timeout"]), "--settle", str(p["settle"])]
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
    before = snapshot(user, "/etc/subuid", "/etc/subgid")
    cmd = argv(p, check)
    rc, stdout, stderr = module.run_command(cmd)
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}

    if check and p["state"] == "disabled":
        changed = rc == 0 and (
            doc.get("remapping_configured") is not None or doc.get("remapping_active") is True
        )
    else:
        changed = rc in (0, 8) and bool(doc.get("changed"))

    result = dict(changed=changed, rc=rc, result=doc, cmd=cmd)
    if module._diff and rc in (0, 8):
        if check:
            result["diff"] = diff_list(before, predicted(before, user, doc, p["state"]), " (planned)")
        else:
            # The ranges' files as the tool names them (paths inside the root: always /etc here).
            after = snapshot(user, "/etc/subuid", "/etc/subgid")
            result["diff"] = diff_list(before, after, "")

    if rc != 0:
        err = doc.get("error") or {"kind": "failure", "message": stderr.strip()}
        if rc == 8:
            failed = (doc.get("carry") or {}).get("failed") or []
            err = {"kind": "carry-incomplete", "message": "not carried: " + "; ".join(failed)}
        result["msg"] = "docker-userns failed (exit %d, %s); %s. %s" % (
            rc,
            err.get("kind", "failure"),
            ROLLBACK.get(rc, "see the message"),
            err.get("message", ""),
        )
        result["stderr"] = stderr
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
