"""Privilege drop (mpmserver.deploy.unixd): resolving User/Group, planning, and a real drop in a forked child."""

from __future__ import annotations

import grp
import json
import os
import pwd
import select
import time

import pytest

from mpmserver.deploy.unixd import (
    DropPlan,
    PrivilegeError,
    drop_privileges,
    plan_drop,
    resolve_group,
    resolve_user,
)

NOBODY = pwd.getpwnam("nobody")
def as_root(test):
    """Marked root, and skipped unless root (a failure under MPMSERVER_REQUIRE_EXTERNAL=1)."""
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")(test))


def _unused_id(taken: set[int]) -> int:
    return next(i for i in range(40000, 60000) if i not in taken)


def _nogroup_gid() -> int:
    for name in ("nogroup", "nobody"):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            pass
    raise AssertionError("this system has neither group nogroup nor nobody")


# -- resolving ------------------------------------------------------------------


def test_resolve_user_by_name_and_by_id():
    assert resolve_user("nobody") == (NOBODY.pw_uid, "nobody", NOBODY.pw_gid)
    assert resolve_user(f"#{NOBODY.pw_uid}") == (NOBODY.pw_uid, "nobody", NOBODY.pw_gid)


def test_resolve_user_unknown_name():
    with pytest.raises(PrivilegeError) as info:
        resolve_user("no-such-user-x")
    assert str(info.value) == "User 'no-such-user-x': no such user"


def test_resolve_user_id_without_passwd_entry_is_refused():
    uid = _unused_id({p.pw_uid for p in pwd.getpwall()})
    with pytest.raises(PrivilegeError, match=f"no passwd entry for uid {uid}"):
        resolve_user(f"#{uid}")


@pytest.mark.parametrize("spec", ["#", "#abc", "#-1", "# 3"])
def test_malformed_numeric_specs_are_refused(spec):
    with pytest.raises(PrivilegeError, match="expected a name or #<number>"):
        resolve_user(spec)
    with pytest.raises(PrivilegeError, match="expected a name or #<number>"):
        resolve_group(spec)


def test_resolve_group_by_name_and_by_id():
    root_group = grp.getgrgid(0).gr_name
    assert resolve_group(root_group) == 0
    assert resolve_group("#33") == 33
    unused = _unused_id({g.gr_gid for g in grp.getgrall()})
    assert resolve_group(f"#{unused}") == unused  # ids are taken as is, as Apache does


def test_resolve_group_unknown_name():
    with pytest.raises(PrivilegeError) as info:
        resolve_group("no-such-group-x")
    assert str(info.value) == "Group 'no-such-group-x': no such group"


# -- planning -------------------------------------------------------------------


def test_plan_drop_not_root_is_none():
    assert plan_drop("nobody", None, euid=1000) is None
    assert plan_drop(None, None, euid=1000) is None
    assert plan_drop("no-such-user-x", None, euid=1000) is None  # ignored, as Apache does


def test_plan_drop_user_with_primary_group():
    plan = plan_drop("nobody", None, euid=0)
    assert plan == DropPlan(uid=NOBODY.pw_uid, gid=NOBODY.pw_gid, user_name="nobody", warning=None)


def test_plan_drop_user_and_group():
    plan = plan_drop(f"#{NOBODY.pw_uid}", "#33", euid=0)
    assert (plan.uid, plan.gid, plan.user_name, plan.warning) == (NOBODY.pw_uid, 33, "nobody", None)


def test_plan_drop_root_without_user_goes_to_nobody_with_a_warning():
    plan = plan_drop(None, None, euid=0)
    assert (plan.uid, plan.gid, plan.user_name) == (NOBODY.pw_uid, _nogroup_gid(), "nobody")
    assert "without a User directive" in plan.warning and "set User and Group" in plan.warning


@pytest.mark.parametrize("spec", ["root", "#0"])
def test_plan_drop_to_uid_0_is_refused(spec):
    with pytest.raises(PrivilegeError) as info:
        plan_drop(spec, None, euid=0)
    assert str(info.value).startswith(f"User {spec} (uid 0) is not allowed: ")


def test_plan_drop_bad_user_fails_at_config_time():
    with pytest.raises(PrivilegeError, match="no such user"):
        plan_drop("no-such-user-x", None, euid=0)
    with pytest.raises(PrivilegeError, match="no such group"):
        plan_drop("nobody", "no-such-group-x", euid=0)


def test_drop_privileges_refuses_uid_0_without_touching_ids():
    before = os.getresuid(), os.getresgid()
    with pytest.raises(PrivilegeError):
        drop_privileges(DropPlan(uid=0, gid=0, user_name="root", warning=None))
    assert (os.getresuid(), os.getresgid()) == before


# -- a real drop, in a forked child ----------------------------------------------------


def _in_child(body) -> tuple[dict, str]:
    """Run body() in a forked child; return its JSON report and its /proc status read while it lives."""
    report_r, report_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 70
        try:
            os.close(report_r)
            os.close(hold_w)
            try:
                report = body()
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                report = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(report_w, json.dumps(report).encode() + b"\n")
            os.read(hold_r, 1)  # stay alive until the parent has read /proc (EOF when it closes)
            code = 0
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(hold_r)
    status_text = ""
    try:
        data = b""
        deadline = time.monotonic() + 5
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0, "the child did not report within 5 s"
            ready, _, _ = select.select([report_r], [], [], left)
            if ready:
                chunk = os.read(report_r, 4096)
                assert chunk, f"the child exited without a report; got {data!r}"
                data += chunk
        with open(f"/proc/{pid}/status") as f:
            status_text = f.read()
    finally:
        os.close(report_r)
        os.close(hold_w)
        deadline = time.monotonic() + 5
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise AssertionError("the child did not exit within 5 s")
            time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data), status_text


def _proc_ids(status_text: str, key: str) -> list[int]:
    line = next(ln for ln in status_text.splitlines() if ln.startswith(key + ":"))
    return [int(x) for x in line.split()[1:]]


def _drop_and_report(plan: DropPlan):
    def body() -> dict:
        drop_privileges(plan)
        try:
            os.setuid(0)
            regained = True
        except PermissionError:
            regained = False
        return {"resuid": os.getresuid(), "resgid": os.getresgid(),
                "groups": os.getgroups(), "regained_root": regained}
    return body


@as_root
def test_child_drops_to_nobody_for_good():
    plan = plan_drop(None, None, euid=os.geteuid())
    gid = _nogroup_gid()
    report, status = _in_child(_drop_and_report(plan))
    assert "error" not in report, report["error"]
    assert report["resuid"] == [NOBODY.pw_uid] * 3
    assert report["resgid"] == [gid] * 3
    assert report["groups"] == [gid]  # root's supplementary groups are gone
    assert report["regained_root"] is False
    # The kernel agrees: real, effective, saved and filesystem ids.
    assert _proc_ids(status, "Uid") == [NOBODY.pw_uid] * 4
    assert _proc_ids(status, "Gid") == [gid] * 4
    assert _proc_ids(status, "Groups") == [gid]
    # And the test process itself is still root.
    assert os.geteuid() == 0


@as_root
def test_child_gets_the_users_supplementary_groups():
    extra = next((g for g in grp.getgrall() if g.gr_mem and g.gr_gid != 0), None)
    if extra is None:
        pytest.skip("no group with members in /etc/group")
    user = extra.gr_mem[0]
    entry = pwd.getpwnam(user)
    if entry.pw_uid == 0:
        pytest.skip("the only group member found is root")
    plan = plan_drop(user, None, euid=0)
    report, status = _in_child(_drop_and_report(plan))
    assert "error" not in report, report["error"]
    assert extra.gr_gid in report["groups"] and entry.pw_gid in report["groups"]
    assert 0 not in _proc_ids(status, "Groups")


@as_root
def test_drop_failure_is_a_privilege_error_naming_the_call():
    first = plan_drop("nobody", None, euid=0)
    second = DropPlan(uid=33, gid=33, user_name="www-data", warning=None)

    def body() -> dict:
        drop_privileges(first)
        drop_privileges(second)  # no longer root: setgid must fail
        return {}

    report, _ = _in_child(body)
    assert report["error"] == "PrivilegeError: setgid(33) failed: Operation not permitted"
