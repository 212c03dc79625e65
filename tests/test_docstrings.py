"""Every public name of pykring (``pykring.__all__``) and every public
method, property and attribute of the exported classes is documented: a
docstring with text, for a property that can be None one that says when,
and each field of a dataclass (:class:`pykring.Stats`) and each public class
attribute described in its class's docstring. Inherited members count where
pykring defines them; those of the standard library (``Exception.args``,
``Mapping.get``) are documented there."""
import dataclasses
import inspect
import re
import typing

import pykring

#: Exported names that are data, not documentable objects.
DATA = {"__version__", "HEADER_FIELDS"}


def _doc(obj):
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    return obj.__doc__


def _blank(doc):
    return doc is None or not doc.strip()


def _can_be_none(func):
    hint = typing.get_type_hints(func).get("return")
    return type(None) in typing.get_args(hint)


def _members(cls):
    """(name, owner, attribute) of every public member of `cls` that a
    pykring class defines, its own or inherited."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if owner.__module__.split(".")[0] == "pykring":
            yield name, owner, vars(owner)[name]


def _described(doc, name):
    """`doc` describes `name` in a line of its own: ``name``: text."""
    return re.search(r"``%s``:\s*\S" % re.escape(name), doc or "") is not None


def problems():
    """What is undocumented, and the members looked at."""
    found, seen = [], set()
    for export in pykring.__all__:
        obj = getattr(pykring, export)
        if export in DATA:
            continue
        seen.add(export)
        if _blank(obj.__doc__):
            found.append("pykring.%s: no docstring" % export)
        if not inspect.isclass(obj):
            continue
        cls = obj
        if dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                seen.add("%s.%s" % (export, f.name))
                if not _described(cls.__doc__, f.name):
                    found.append("pykring.%s: field %r is not described in the class docstring" % (export, f.name))
                elif type(None) in typing.get_args(typing.get_type_hints(cls)[f.name]):
                    entry = re.search(r"``%s``:(.*?)(?=\n\s*``\w+``:|\Z)" % f.name, cls.__doc__, re.S).group(1)
                    if "None" not in entry:
                        found.append("pykring.%s.%s can be None: its description must say when" % (export, f.name))
        for name, owner, attr in _members(cls):
            where = "pykring.%s.%s" % (export, name)
            seen.add("%s.%s" % (export, name))
            if isinstance(attr, property) or callable(attr) or isinstance(attr, (classmethod, staticmethod)):
                doc = _doc(attr)
                if _blank(doc):
                    found.append("%s: no docstring (defined in %s)" % (where, owner.__qualname__))
                elif isinstance(attr, property) and _can_be_none(attr.fget) and "None" not in doc:
                    found.append("%s can be None: its docstring must say when" % where)
            elif not _described(owner.__doc__, name):
                found.append("%s: attribute not described (``%s``: ...) in the docstring of %s"
                             % (where, name, owner.__qualname__))
    return found, seen


def test_every_public_name_and_member_is_documented():
    found, _ = problems()
    assert not found, "undocumented:\n" + "\n".join(found)


def test_the_walk_reaches_the_members_users_read():
    _, seen = problems()
    expected = {
        "create", "attach", "kernel", "wait_any", "to_arrow", "Ring", "Producer", "Batch", "Stats", "KringError",
        "Ring.stats", "Ring.capacity", "Ring.path", "Ring.dtypes", "Ring.dtype", "Ring.flags", "Ring.closed",
        "Ring.read", "Ring.read_batch", "Ring.aread", "Ring.source", "Ring.close",
        "Producer.written", "Producer.dropped", "Producer.path", "Producer.dtypes", "Producer.create",
        "Stats.written", "Stats.dropped", "Stats.lost", "Stats.read", "Stats.pending_bytes", "Stats.capacity",
        "Batch.count", "Batch.to_arrow", "RingClosedError.written",
    }
    assert expected <= seen, "not looked at: %s" % sorted(expected - seen)


def test_a_missing_docstring_is_found(monkeypatch):
    # The check itself: a property without a docstring is reported.
    monkeypatch.setattr(pykring.Batch, "count", property(pykring.Batch.count.fget, doc=" "))
    found, _ = problems()
    assert any(p.startswith("pykring.Batch.count: no docstring") for p in found), found
