"""Which spec fields the code reads, and which the spec rules refuse: a static scan of the package's source.

A *read* is an attribute access ``<expr>.<field>`` (or ``getattr(<expr>, "<field>")``) where ``<expr>`` is known
to be that section: the scan follows types the way the code declares them (parameters and attributes annotated
with ``JobSpec`` / ``ModelSection`` / a class holding one, return annotations, assignments, ``a or b``), so
``spec.model.cache_dir`` counts but ``tokenizer.cache_dir`` or ``self.tool_format`` of a template do not. Reads
through a section's own property (``method.effective_lora_alpha``) count for the fields the property reads.
Code that forwards keys generically must name them in a module-level tuple ``*SPEC_PASSTHROUGH`` of
``"section.field"`` strings that the module uses. Reads inside ``tunery/spec`` (the definitions and the rules
that validate them) do not count as honouring a key.

A *refusal* is a key of an ``UNSUPPORTED_*_OPTIONS`` dict, or the first argument of a ``SpecProblem(...)`` in
``spec/rules*.py`` (a string literal, or a loop variable over a literal tuple/list/dict of them).
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

PACKAGE = Path(__file__).resolve().parents[2] / "backend" / "tunery"
PASSTHROUGH_SUFFIX = "SPEC_PASSTHROUGH"

Types = frozenset[str]
EMPTY: Types = frozenset()


def package_sources(root: Path = PACKAGE) -> dict[str, str]:
    """Every module of the package as ``{"engine/train/model.py": source}``."""
    return {path.relative_to(root).as_posix(): path.read_text(encoding="utf-8") for path in sorted(root.rglob("*.py"))}


def is_spec_module(rel: str) -> bool:
    return rel.startswith("spec/")


def is_rules_module(rel: str) -> bool:
    return rel.startswith("spec/rules") and rel.endswith(".py")


@dataclass
class Declarations:
    """What the sources declare: class attributes' and functions' types (names of classes/sections)."""

    section_of_class: dict[str, str]
    classes: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    functions: dict[str, set[str]] = field(default_factory=dict)

    def copy(self) -> Declarations:
        return Declarations(
            dict(self.section_of_class),
            {name: {attr: set(types) for attr, types in attrs.items()} for name, attrs in self.classes.items()},
            {name: set(types) for name, types in self.functions.items()},
        )

    def annotation_types(self, node: ast.expr | None) -> Types:
        if node is None:
            return EMPTY
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return EMPTY
        found: set[str] = set()
        for sub in ast.walk(node):
            name = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
            if name is None:
                continue
            if name in self.section_of_class:
                found.add(f"section:{self.section_of_class[name]}")
            elif name in self.classes:
                found.add(f"class:{name}")
        return frozenset(found)


def _declare(trees: Mapping[str, ast.Module], decls: Declarations) -> Declarations:
    """Add the classes' annotated attributes and properties, and the functions' return types, of ``trees``."""
    class_nodes = [node for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    for node in class_nodes:
        decls.classes.setdefault(node.name, {})
    for node in class_nodes:
        attrs = decls.classes[node.name]
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                attrs.setdefault(stmt.target.id, set()).update(decls.annotation_types(stmt.annotation))
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_property(stmt):
                attrs.setdefault(stmt.name, set()).update(decls.annotation_types(stmt.returns))
    for tree in trees.values():
        for sub in ast.walk(tree):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                decls.functions.setdefault(sub.name, set()).update(decls.annotation_types(sub.returns))
    return decls


def _is_property(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id in ("property", "cached_property") for d in func.decorator_list)


class _Scanner(ast.NodeVisitor):
    """Walks one module with a scope stack of ``name -> types``; records reads of section fields."""

    def __init__(
        self,
        decls: Declarations,
        fields: Mapping[str, Mapping[str, frozenset[str]]],
        record: bool,
    ) -> None:
        self.decls = decls
        self.fields = fields  # section -> {attribute: fields it stands for}
        self.record = record
        self.scopes: list[dict[str, set[str]]] = [{}]
        self.class_stack: list[str] = []
        self.reads: set[tuple[str, str]] = set()

    # types -----------------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> Types:
        for scope in reversed(self.scopes):
            if name in scope:
                return frozenset(scope[name])
        return EMPTY

    def typeof(self, node: ast.expr) -> Types:
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            out: set[str] = set()
            for kind in self.typeof(node.value):
                if kind.startswith("class:"):
                    out.update(self.decls.classes.get(kind[6:], {}).get(node.attr, ()))
            return frozenset(out)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name is None:
                return EMPTY
            if name in self.decls.section_of_class:
                return frozenset({f"section:{self.decls.section_of_class[name]}"})
            if isinstance(func, ast.Name) and name in self.decls.classes:
                return frozenset({f"class:{name}"})
            return frozenset(self.decls.functions.get(name, ()))
        if isinstance(node, ast.BoolOp):
            return frozenset().union(*(self.typeof(value) for value in node.values))
        if isinstance(node, ast.IfExp):
            return self.typeof(node.body) | self.typeof(node.orelse)
        if isinstance(node, ast.Await):
            return self.typeof(node.value)
        if isinstance(node, ast.NamedExpr):
            return self.typeof(node.value)
        return EMPTY

    def bind(self, target: ast.expr, types: Types) -> None:
        if not types:
            return
        if isinstance(target, ast.Name):
            self.scopes[-1].setdefault(target.id, set()).update(types)
        elif (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and self.class_stack
        ):
            self.decls.classes[self.class_stack[-1]].setdefault(target.attr, set()).update(types)

    # scopes ----------------------------------------------------------------------------------------------------
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        self.class_stack.append(node.name)
        self.scopes.append({})
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()
        self.class_stack.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        scope: dict[str, set[str]] = {}
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        for index, arg in enumerate([*positional, *args.kwonlyargs, args.vararg, args.kwarg]):
            if arg is None:
                continue
            types = set(self.decls.annotation_types(arg.annotation))
            if index == 0 and self.class_stack and arg.arg in ("self", "cls") and not isinstance(node, ast.Lambda):
                types.add(f"class:{self.class_stack[-1]}")
            if types:
                scope[arg.arg] = types
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(default)
        self.scopes.append(scope)
        body = node.body if isinstance(node.body, list) else [node.body]
        # Twice: a name bound further down (a loop) is known on the second walk.
        for walk in range(2):
            recording, self.record = self.record, self.record and walk == 1
            for stmt in body:
                self.visit(stmt)
            self.record = recording
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        inner_class = self.class_stack
        self._function(node)
        self.class_stack = inner_class

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node)

    # bindings --------------------------------------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)
            self.bind_value(target, node.value)

    def bind_value(self, target: ast.expr, value: ast.expr) -> None:
        """``a = x`` and ``a, b = x, y``."""
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                self.bind_value(sub_target, sub_value)
        else:
            self.bind(target, self.typeof(value))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)
        self.bind(node.target, self.decls.annotation_types(node.annotation))
        if node.value is not None:
            self.bind(node.target, self.typeof(node.value))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.bind(node.target, self.typeof(node.value))

    # reads -----------------------------------------------------------------------------------------------------
    def _note(self, holder: ast.expr, attr: str) -> None:
        if not self.record:
            return
        for kind in self.typeof(holder):
            if kind.startswith("section:"):
                section = kind[8:]
                for name in self.fields.get(section, {}).get(attr, ()):
                    self.reads.add((section, name))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            self._note(node.value, node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            self._note(node.args[0], node.args[1].value)
        self.generic_visit(node)


def section_accessors(section: type[BaseModel]) -> dict[str, frozenset[str]]:
    """``attribute -> fields`` of a section: each field stands for itself, each property/method defined on the
    section (or its bases in the package) for the fields it reads through ``self``."""
    names = set(section.model_fields)
    accessors = {name: frozenset({name}) for name in names}
    for cls in section.__mro__:
        if not cls.__module__.startswith("tunery.") or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in accessors:
                used = {
                    sub.attr
                    for sub in ast.walk(node)
                    if isinstance(sub, ast.Attribute)
                    and isinstance(sub.value, ast.Name)
                    and sub.value.id == "self"
                    and sub.attr in names
                }
                if used:
                    accessors[node.name] = frozenset(used)
    return accessors


def passthrough_reads(rel: str, tree: ast.Module, sections: Mapping[str, type[BaseModel]]) -> set[tuple[str, str]]:
    """Keys a module forwards generically: a module-level ``*SPEC_PASSTHROUGH`` tuple of ``"section.field"``
    strings, used elsewhere in the module. Malformed tables raise (the test must not pass on a typo)."""
    reads: set[tuple[str, str]] = set()
    for stmt in tree.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None
        if isinstance(stmt, ast.AnnAssign):
            target = stmt.target
        if not (isinstance(target, ast.Name) and target.id.endswith(PASSTHROUGH_SUFFIX)):
            continue
        value = stmt.value
        if not isinstance(value, ast.Tuple):
            raise AssertionError(f"{rel}: {target.id} must be a literal tuple of 'section.field' strings")
        uses = [
            sub
            for sub in ast.walk(tree)
            if isinstance(sub, ast.Name) and sub.id == target.id and isinstance(sub.ctx, ast.Load)
        ]
        if not uses:
            raise AssertionError(f"{rel}: {target.id} is never used, so it forwards nothing")
        for item in value.elts:
            text = item.value if isinstance(item, ast.Constant) else None
            section, _, name = str(text).partition(".")
            if not isinstance(text, str) or section not in sections or name not in sections[section].model_fields:
                raise AssertionError(f"{rel}: {target.id} entry {text!r} is not a 'section.field' of the spec")
            reads.add((section, name))
    return reads


@functools.cache
def _parse(rel: str, text: str) -> ast.Module:
    return ast.parse(text, filename=rel)


class Scan:
    """The package's declarations (types of classes' attributes and functions' results, ``self.x = <section>``
    attributes learned from every module); :meth:`reads` records the reads of chosen modules."""

    def __init__(
        self, sources: Mapping[str, str], sections: Mapping[str, type[BaseModel]], base: Scan | None = None
    ) -> None:
        self.sections = sections
        new = {rel: _parse(rel, text) for rel, text in sources.items()}
        if base is None:
            self.accessors = {name: section_accessors(cls) for name, cls in sections.items()}
            self.decls = Declarations({cls.__name__: name for name, cls in sections.items()})
            self.trees = new
        else:
            self.accessors = base.accessors
            self.decls = base.decls.copy()
            self.trees = {**base.trees, **new}
        _declare(new, self.decls)
        for tree in new.values():
            _Scanner(self.decls, self.accessors, record=False).visit(tree)

    def extended(self, sources: Mapping[str, str]) -> Scan:
        """This scan plus more modules (declarations learned from them too): cheap, for synthetic modules."""
        return Scan(sources, self.sections, base=self)

    def reads(self, modules: Iterable[str] | None = None) -> set[tuple[str, str]]:
        """``(section, field)`` pairs read by ``modules`` (default: all) outside ``spec/``."""
        reads: set[tuple[str, str]] = set()
        for rel in self.trees if modules is None else modules:
            if is_spec_module(rel):
                continue
            scanner = _Scanner(self.decls, self.accessors, record=True)
            scanner.visit(self.trees[rel])
            reads |= scanner.reads | passthrough_reads(rel, self.trees[rel], self.sections)
        return reads


def code_reads(sources: Mapping[str, str], sections: Mapping[str, type[BaseModel]]) -> set[tuple[str, str]]:
    """``(section, field)`` pairs read by modules outside ``spec/`` (declarations are taken from all modules)."""
    return Scan(sources, sections).reads()


def _literal_strings(node: ast.expr) -> Iterator[str]:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for item in node.elts:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                yield item.value
    elif isinstance(node, ast.Dict):
        for key in node.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value


def _assigned(nodes: Iterable[ast.AST]) -> dict[str, ast.expr]:
    literals: dict[str, ast.expr] = {}
    for sub in nodes:
        if isinstance(sub, ast.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0], ast.Name):
            literals[sub.targets[0].id] = sub.value
        elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name) and sub.value is not None:
            literals[sub.target.id] = sub.value
    return literals


def _loop_keys(func: ast.AST, module_literals: Mapping[str, ast.expr]) -> dict[str, set[str]]:
    """Names bound by ``for name in <literal>`` / ``for name, _ in <dict>.items()`` (a literal assigned to a name
    in the function or at module level counts)."""
    literals = {**module_literals, **_assigned(ast.walk(func))}
    keys: dict[str, set[str]] = {}
    for sub in ast.walk(func):
        if not isinstance(sub, (ast.For, ast.comprehension)):
            continue
        source = sub.iter
        if (
            isinstance(source, ast.Call)
            and isinstance(source.func, ast.Attribute)
            and source.func.attr in ("items", "keys")
        ):
            source = source.func.value
        if isinstance(source, ast.Name) and source.id in literals:
            source = literals[source.id]
        target = sub.target
        if isinstance(target, ast.Tuple) and target.elts:
            target = target.elts[0]
        if isinstance(target, ast.Name):
            keys.setdefault(target.id, set()).update(_literal_strings(source))
    return keys


def rule_refusals(sources: Mapping[str, str]) -> set[str]:
    """Keys named as the first argument of ``SpecProblem(...)`` in ``spec/rules*.py``."""
    refused: set[str] = set()
    for rel, text in sources.items():
        if not is_rules_module(rel):
            continue
        tree = _parse(rel, text)
        module_literals = _assigned(tree.body)
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            loops = _loop_keys(func, module_literals)
            for call in ast.walk(func):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "SpecProblem"
                    and call.args
                ):
                    continue
                first = call.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    refused.add(first.value)
                elif isinstance(first, ast.Name):
                    refused.update(loops.get(first.id, ()))
    return refused


def ignored_keys(
    sections: Mapping[str, type[BaseModel]],
    sources: Mapping[str, str],
    unsupported: Iterable[str],
    reads: set[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """Every ``(section, field)`` that no code outside ``spec/`` reads and no rule refuses, sorted (``reads``: the
    result of a :class:`Scan` of ``sources`` already made)."""
    if reads is None:
        reads = Scan(sources, sections).reads()
    refused = rule_refusals(sources) | set(unsupported)
    return sorted(
        (name, key)
        for name, cls in sections.items()
        for key in cls.model_fields
        if (name, key) not in reads and key not in refused
    )
