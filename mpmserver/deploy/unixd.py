"""Dropping root privileges in each child (Apache's mod_unixd).

The master keeps root (to bind ports below 1024 and reopen logs); it calls
plan_drop() while reading the configuration, so a bad User or Group stops the
server before any child is forked. Each child calls drop_privileges() before
it loads the application. On failure a child must exit with CHILDFATAL so the
master shuts down instead of respawning it.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

__all__ = ["PrivilegeError", "DropPlan", "resolve_user", "resolve_group", "plan_drop", "groups_of",
           "drop_privileges"]

# Used when running as root without a User directive, as Apache's default
# build does (User/Group "#-1" there; nobody/nogroup is the usual meaning).
DEFAULT_USER = "nobody"
DEFAULT_GROUPS = ("nogroup", "nobody")


class PrivilegeError(Exception):
    """User/Group cannot be resolved, is not allowed, or the drop failed."""


@dataclass(frozen=True)
class DropPlan:
    uid: int
    gid: int
    user_name: str  # for initgroups: supplementary groups come from the group database
    warning: str | None  # to log once at start, e.g. when User was not set


def _numeric(spec: str, what: str) -> int | None:
    # Apache's "#<id>" form; None when spec is a name.
    if not spec.startswith("#"):
        return None
    digits = spec[1:]
    if not digits.isdigit():
        raise PrivilegeError(f"{what} {spec!r}: expected a name or #<number>")
    return int(digits)


def resolve_user(spec: str) -> tuple[int, str, int]:
    """Resolve a User value ("www-data" or "#33") to (uid, name, primary gid)."""
    uid = _numeric(spec, "User")
    try:
        entry = pwd.getpwnam(spec) if uid is None else pwd.getpwuid(uid)
    except KeyError:
        if uid is None:
            raise PrivilegeError(f"User {spec!r}: no such user") from None
        # initgroups needs a name, so an id without a passwd entry cannot be used.
        raise PrivilegeError(f"User {spec!r}: no passwd entry for uid {uid}; use a name from /etc/passwd") from None
    return entry.pw_uid, entry.pw_name, entry.pw_gid


def resolve_group(spec: str) -> int:
    """Resolve a Group value ("www-data" or "#33") to a gid.

    "#<id>" is taken as is, even without a group entry, as Apache does.
    """
    gid = _numeric(spec, "Group")
    if gid is not None:
        return gid
    try:
        return grp.getgrnam(spec).gr_gid
    except KeyError:
        raise PrivilegeError(f"Group {spec!r}: no such group") from None


def plan_drop(user: str | None, group: str | None, euid: int) -> DropPlan | None:
    """Decide, at configuration time, what each child will become.

    None when not running as root (nothing to drop; User/Group are ignored,
    as in Apache). As root without User: nobody and nogroup, with a warning.
    Group None means the user's primary group. A User resolving to uid 0 is
    refused.
    """
    if euid != 0:
        return None
    warning = None
    if user is None:
        user = DEFAULT_USER
        if group is None:
            group = _default_group()
        # Say what that breaks: a Django project's sqlite admin login answers
        # 500 "attempt to write a readonly database", far from this line.
        warning = (f"running as root without a User directive: children will run as "
                   f"{user}:{group}, which cannot write the project's files, uploads or its sqlite "
                   f"database (they belong to root or to you); set User and Group to an account that "
                   f"may, e.g. 'User www-data' and 'Group www-data' in the configuration (or --user, "
                   f"--group), and give that account the files it must write")
    uid, name, primary_gid = resolve_user(user)
    if uid == 0:
        raise PrivilegeError(
            f"User {user} (uid 0) is not allowed: serving requests as root would give every "
            f"application bug full control of the machine; set User to an unprivileged account")
    gid = primary_gid if group is None else resolve_group(group)
    return DropPlan(uid=uid, gid=gid, user_name=name, warning=warning)


def groups_of(plan: DropPlan) -> frozenset[int]:
    """Every group a child of this plan is in: Group plus the User's
    supplementary groups (what initgroups gives it in drop_privileges)."""
    try:
        return frozenset(os.getgrouplist(plan.user_name, plan.gid))
    except OSError:
        return frozenset((plan.gid,))


def _default_group() -> str:
    for name in DEFAULT_GROUPS:
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        return name
    raise PrivilegeError(f"running as root without a Group directive and none of the groups "
                         f"{', '.join(DEFAULT_GROUPS)} exists; set User and Group")


def drop_privileges(plan: DropPlan) -> None:
    """Become plan.uid/plan.gid for good: setgid, initgroups, setuid, verify.

    Call in the child before any thread starts and before the application is
    loaded. setuid() as root sets the real, effective and saved ids, so the
    process cannot get root back; that is verified, not assumed.
    """
    if plan.uid == 0:
        raise PrivilegeError("refusing to 'drop' to uid 0")
    try:
        os.setgid(plan.gid)
    except OSError as exc:
        raise PrivilegeError(f"setgid({plan.gid}) failed: {exc.strerror}") from None
    try:
        os.initgroups(plan.user_name, plan.gid)
    except OSError as exc:
        raise PrivilegeError(f"initgroups({plan.user_name!r}, {plan.gid}) failed: {exc.strerror}") from None
    try:
        os.setuid(plan.uid)
    except OSError as exc:
        raise PrivilegeError(f"setuid({plan.uid}) failed: {exc.strerror}") from None
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PrivilegeError(f"after setuid({plan.uid}) the process could become root again")
    resuid = os.getresuid()
    resgid = os.getresgid()
    if resuid != (plan.uid,) * 3 or resgid != (plan.gid,) * 3:
        raise PrivilegeError(f"after the drop: uids {resuid}, gids {resgid}; expected uid {plan.uid}, gid {plan.gid}")
