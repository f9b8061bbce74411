"""License knowledge: normalise free-form license strings to SPDX, detect license texts and file headers.

Every function returns an SPDX id (``"MIT"``) or a normalised SPDX expression
(``"Apache-2.0 OR BSD-2-Clause"``), or ``None`` when the license is unknown.

Expressions are judged as SPDX means them:

* ``A OR B`` - the user may pick either branch, so the expression is *allowed* when any branch is
  allowed and *copyleft* only when every branch is copyleft;
* ``A AND B`` - all terms apply, so it is allowed only when every term is allowed and copyleft
  when any term is copyleft;
* ``A WITH exception`` - an exception only adds permissions, so it is judged as ``A``.

An OR-branch that cannot be resolved is dropped (it cannot make the expression less
permissive); an unresolvable AND-term makes the whole expression unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# The permissive licenses The Stack kept, as SPDX ids (plus their deprecated spellings' targets).
PERMISSIVE_LICENSES: frozenset[str] = frozenset(
    {
        "MIT",
        "MIT-0",
        "MIT-CMU",
        "X11",
        "Apache-2.0",
        "Apache-1.1",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "BSD-3-Clause-Clear",
        "0BSD",
        "ISC",
        "Unlicense",
        "CC0-1.0",
        "CC-BY-3.0",
        "CC-BY-4.0",
        "Zlib",
        "PSF-2.0",
        "Python-2.0",
        "CNRI-Python",
        "BSL-1.0",
        "WTFPL",
        "NCSA",
        "UPL-1.0",
        "PostgreSQL",
        "Artistic-2.0",
        "AFL-3.0",
        "ECL-2.0",
        "MS-PL",
        "HPND",
        "BlueOak-1.0.0",
        "Unicode-DFS-2016",
        "Unicode-3.0",
    }
)

# Reciprocal licenses: strong (GPL family) and weak/file-level (MPL, EPL, ...) copyleft.
COPYLEFT_LICENSES: frozenset[str] = frozenset(
    {
        "GPL-1.0-only",
        "GPL-1.0-or-later",
        "GPL-2.0-only",
        "GPL-2.0-or-later",
        "GPL-3.0-only",
        "GPL-3.0-or-later",
        "LGPL-2.0-only",
        "LGPL-2.0-or-later",
        "LGPL-2.1-only",
        "LGPL-2.1-or-later",
        "LGPL-3.0-only",
        "LGPL-3.0-or-later",
        "AGPL-1.0-only",
        "AGPL-3.0-only",
        "AGPL-3.0-or-later",
        "MPL-1.0",
        "MPL-1.1",
        "MPL-2.0",
        "EPL-1.0",
        "EPL-2.0",
        "CDDL-1.0",
        "CDDL-1.1",
        "EUPL-1.1",
        "EUPL-1.2",
        "OSL-3.0",
        "CECILL-2.1",
        "CC-BY-SA-3.0",
        "CC-BY-SA-4.0",
        "MS-RL",
        "SSPL-1.0",
    }
)

_OTHER_KNOWN = ("BSD-4-Clause", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "Apache-1.0")

_SPDX_IDS: tuple[str, ...] = tuple(sorted(PERMISSIVE_LICENSES | COPYLEFT_LICENSES)) + _OTHER_KNOWN

# Free-form spellings seen in dumps, PyPI metadata and classifiers -> SPDX id. Keys are compared
# after _squash(), so case, spaces, punctuation and the words "license"/"version" do not matter.
_ALIASES: dict[str, str] = {
    "Expat": "MIT",
    "MIT License": "MIT",
    "The MIT License (MIT)": "MIT",
    "MIT/Expat": "MIT",
    "MIT No Attribution": "MIT-0",
    "CMU License": "MIT-CMU",
    "X11 License": "X11",
    "Apache": "Apache-2.0",
    "Apache 2": "Apache-2.0",
    "Apache2": "Apache-2.0",
    "Apache Software License": "Apache-2.0",
    "Apache Software License 2.0": "Apache-2.0",
    "Apache License 2.0": "Apache-2.0",
    "ASL 2.0": "Apache-2.0",
    "ASF 2.0": "Apache-2.0",
    "Apache 2.0 License": "Apache-2.0",
    "BSD": "BSD-3-Clause",
    "BSD License": "BSD-3-Clause",
    "BSD-style": "BSD-3-Clause",
    "new BSD": "BSD-3-Clause",
    "modified BSD": "BSD-3-Clause",
    "revised BSD": "BSD-3-Clause",
    "BSD 3-Clause": "BSD-3-Clause",
    "3-Clause BSD": "BSD-3-Clause",
    "BSD 3 clause": "BSD-3-Clause",
    "BSD three clause": "BSD-3-Clause",
    "BSD-3": "BSD-3-Clause",
    "BSD 2-Clause": "BSD-2-Clause",
    "2-Clause BSD": "BSD-2-Clause",
    "BSD-2": "BSD-2-Clause",
    "simplified BSD": "BSD-2-Clause",
    "FreeBSD": "BSD-2-Clause",
    "BSD two clause": "BSD-2-Clause",
    "BSD 4-Clause": "BSD-4-Clause",
    "original BSD": "BSD-4-Clause",
    "0-clause BSD": "0BSD",
    "BSD Zero Clause": "0BSD",
    "Zero-Clause BSD": "0BSD",
    "ISC License (ISCL)": "ISC",
    "ISCL": "ISC",
    "The Unlicense (Unlicense)": "Unlicense",
    "The Unlicense": "Unlicense",
    "CC0": "CC0-1.0",
    "CC0 1.0 Universal": "CC0-1.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    "Creative Commons Zero": "CC0-1.0",
    "zlib/libpng": "Zlib",
    "zlib License": "Zlib",
    "PSF": "PSF-2.0",
    "PSFL": "PSF-2.0",
    "PSF License": "PSF-2.0",
    "PSF 2.0": "PSF-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "Python Software Foundation": "PSF-2.0",
    "Python License": "Python-2.0",
    "Python": "Python-2.0",
    "CNRI Python License": "CNRI-Python",
    "Boost": "BSL-1.0",
    "Boost Software License": "BSL-1.0",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "BSL": "BSL-1.0",
    "Do What The F*ck You Want To Public License": "WTFPL",
    "University of Illinois/NCSA Open Source License": "NCSA",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "PostgreSQL License": "PostgreSQL",
    "Artistic License 2.0": "Artistic-2.0",
    "Academic Free License (AFL)": "AFL-3.0",
    "Educational Community License, Version 2.0 (ECL-2.0)": "ECL-2.0",
    "Microsoft Public License": "MS-PL",
    "Microsoft Reciprocal License": "MS-RL",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "Blue Oak Model License": "BlueOak-1.0.0",
    "MPL": "MPL-2.0",
    "MPL 2.0": "MPL-2.0",
    "MPL2": "MPL-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Mozilla Public License 2.0": "MPL-2.0",
    "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "Mozilla Public License 1.0 (MPL)": "MPL-1.0",
    "EPL": "EPL-2.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "Common Development and Distribution License 1.0 (CDDL-1.0)": "CDDL-1.0",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "European Union Public Licence 1.1 (EUPL 1.1)": "EUPL-1.1",
    "Open Software License 3.0 (OSL-3.0)": "OSL-3.0",
    "CeCILL-2.1": "CECILL-2.1",
    "CC BY 4.0": "CC-BY-4.0",
    "CC BY-SA 4.0": "CC-BY-SA-4.0",
    "Server Side Public License": "SSPL-1.0",
}

# Old SPDX ids of the GPL family -> current ones.
_GPL_FAMILY = re.compile(
    r"\b(?P<fam>a(?:ffero)?\s*gpl|l(?:esser)?\s*gpl|gpl|gnu\s+affero|gnu\s+lesser|gnu\s+library|"
    r"affero\s+general|lesser\s+general|library\s+general|(?:gnu\s+)?general\s+public)"
)
_VERSION = re.compile(r"(?<![\d.])v?\s*(\d)(?:\.(\d))?(?![\d])")
_OR_LATER = re.compile(r"\+|or[\s-]+(?:any\s+)?later|or-later|and\s+later")


def _squash(value: str) -> str:
    """A lookup key: lower case, 'licence' -> 'license', no punctuation, no filler words."""
    s = value.lower().replace("licence", "license")
    s = re.sub(r"\b(the|license|version|software)\b", " ", s)
    s = re.sub(r"\bv(?=\s*\d)", "", s)
    return re.sub(r"[^a-z0-9.+*]", "", s).replace(".0", "") or s.strip()


@lru_cache(maxsize=1)
def _alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for spdx in _SPDX_IDS:
        table[_squash(spdx)] = spdx
    # Deprecated SPDX spellings: GPL-2.0, GPL-2.0+, LGPL-2.1, ...
    for spdx in _SPDX_IDS:
        if spdx.endswith("-only"):
            table.setdefault(_squash(spdx[: -len("-only")]), spdx)
        elif spdx.endswith("-or-later"):
            table.setdefault(_squash(spdx[: -len("-or-later")] + "+"), spdx)
    for alias, spdx in _ALIASES.items():
        table[_squash(alias)] = spdx
    return table


def _gpl_family(term: str) -> str | None:
    """GPL / LGPL / AGPL in any spelling ('GPLv3', 'LGPL-2.1+', 'GNU General Public License v2 or later')."""
    low = term.lower().replace("licence", "license")
    m = _GPL_FAMILY.search(low)
    if m is None:
        return None
    fam = m.group("fam")
    if fam.startswith("a") or "affero" in fam:
        family, default = "AGPL", "3.0"
    elif fam.startswith("l") or "lesser" in fam or "library" in fam:
        family, default = "LGPL", "2.0"
    else:
        family, default = "GPL", "1.0"  # "If the Program does not specify a version ... any version"
    rest = low[m.end() :]
    v = _VERSION.search(rest) or _VERSION.search(low[: m.start()])
    later = bool(_OR_LATER.search(low))
    if v is None:
        version, later = default, True
    else:
        version = f"{v.group(1)}.{v.group(2) or 0}"
    spdx = f"{family}-{version}-{'or-later' if later else 'only'}"
    if spdx not in COPYLEFT_LICENSES:
        spdx = f"{family}-{version}-only"
    return spdx if spdx in COPYLEFT_LICENSES else None


def _resolve_term(term: str) -> str | None:
    """One license name (no operators) -> SPDX id, or None."""
    term = term.strip().strip("\"'")
    if not term:
        return None
    spdx = _alias_table().get(_squash(term))
    if spdx is not None:
        return spdx
    if re.search(r"[,;](?!\s*(?:version|v\.?\s*\d))", term, re.IGNORECASE):
        return None  # a list of several licenses ("public domain, Python, 2-Clause BSD, GPL 3")
    spdx = _gpl_family(term)
    if spdx is not None:
        return spdx
    # Classifier leaves carry the short name in parentheses: "... License 2.0 (MPL 2.0)".
    paren = re.search(r"\(([^()]+)\)\s*$", term)
    if paren:
        return _resolve_term(paren.group(1)) or _resolve_term(term[: paren.start()])
    return None


_TOKEN = re.compile(r"\(|\)|\s+(?:OR|AND|WITH)\s+|[^()]+?(?=\s+(?:OR|AND|WITH)\s+|[()]|$)", re.IGNORECASE)


def _tokenize(expr: str) -> list[str]:
    tokens = []
    for tok in _TOKEN.findall(expr):
        tok = tok.strip()
        if tok:
            tokens.append(tok.upper() if tok.upper() in ("OR", "AND", "WITH") else tok)
    return tokens


class _ExpressionParser:
    """Recursive descent over SPDX tokens: or := and (OR and)*; and := atom (AND atom)*."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Any:
        node = self.parse_or()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return node

    def parse_or(self) -> Any:
        branches = [self.parse_and()]
        while self.peek() == "OR":
            self.take()
            branches.append(self.parse_and())
        return branches[0] if len(branches) == 1 else ("OR", branches)

    def parse_and(self) -> Any:
        terms = [self.parse_atom()]
        while self.peek() == "AND":
            self.take()
            terms.append(self.parse_atom())
        return terms[0] if len(terms) == 1 else ("AND", terms)

    def parse_atom(self) -> Any:
        tok = self.peek()
        if tok is None or tok in ("OR", "AND", "WITH", ")"):
            raise ValueError("expected a license")
        self.take()
        if tok == "(":
            node = self.parse_or()
            if self.peek() != ")":
                raise ValueError("unbalanced parenthesis")
            self.take()
            return node
        node: Any = _resolve_term(tok)
        if self.peek() == "WITH":
            self.take()
            exception = self.take() if self.peek() not in (None, "(", ")") else ""
            node = ("WITH", node, exception.strip())
        return node


def _simplify(node: Any) -> Any:
    """Drop unresolved OR branches; an unresolved AND term (or WITH base) makes the node None."""
    if node is None or isinstance(node, str):
        return node
    op = node[0]
    if op == "WITH":
        return None if node[1] is None else node
    kids = [_simplify(k) for k in node[1]]
    if op == "OR":
        kids = [k for k in kids if k is not None]
    elif any(k is None for k in kids):
        return None
    unique: list[Any] = []
    for k in kids:
        if k not in unique:
            unique.append(k)
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else (op, unique)


def _render(node: Any, parent: str | None = None) -> str:
    if isinstance(node, str):
        return node
    if node[0] == "WITH":
        return f"{node[1]} WITH {node[2]}" if node[2] else node[1]
    op = node[0]
    text = f" {op} ".join(_render(k, op) for k in node[1])
    return f"({text})" if parent is not None and parent != op else text


def normalize_license(value: str | list[str] | None) -> str | None:
    """A free-form license string (or SPDX expression, or a whole license text) -> SPDX, or None.

    ``"MIT License"`` -> ``"MIT"``; ``"new BSD"`` -> ``"BSD-3-Clause"``; ``"GPLv3+"`` ->
    ``"GPL-3.0-or-later"``; ``"mit or apache 2.0"`` -> ``"MIT OR Apache-2.0"``. A bare "BSD" is read
    as BSD-3-Clause (what PyPI's "BSD License" classifier almost always means). A list (The
    Stack's ``max_stars_repo_licenses``) is read as the OR of its items.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        value = " OR ".join(f"({v})" for v in value)
    return _normalize_cached(str(value))


@lru_cache(maxsize=4096)
def _normalize_cached(value: str) -> str | None:
    value = value.strip()
    if not value or value.upper() in ("UNKNOWN", "NONE", "NOASSERTION", "OTHER", "N/A"):
        return None
    if "\n" in value or len(value) > 200:
        return detect_license_text(value)
    spdx = _alias_table().get(_squash(value))
    if spdx is not None:
        return spdx
    # "GPLv2 or later" is a version suffix, not an OR expression.
    value = _LATER_SUFFIX.sub("+", value)
    if _OPERATOR.search(value):
        try:
            node = _simplify(_ExpressionParser(_tokenize(value)).parse())
        except (ValueError, IndexError):
            node = None
        if node is not None:
            return _render(node)
    return _resolve_term(value)


_LATER_SUFFIX = re.compile(r"\s+(?:or|and)\s+(?:any\s+)?later(?:\s+version)?", re.IGNORECASE)
_OPERATOR = re.compile(r"\s(?:OR|AND|WITH)\s", re.IGNORECASE)


def _parse_normalized(expr: str) -> Any:
    return _ExpressionParser(_tokenize(expr)).parse()


def _evaluate(node: Any, leaf: Any, any_for_or: bool) -> bool:
    if isinstance(node, str):
        return leaf(node)
    if node[0] == "WITH":
        return leaf(node[1])
    results = [_evaluate(k, leaf, any_for_or) for k in node[1]]
    if node[0] == "OR":
        return any(results) if any_for_or else all(results)
    return all(results) if any_for_or else any(results)


@lru_cache(maxsize=4096)
def _node(expr: str) -> Any:
    try:
        return _simplify(_parse_normalized(expr))
    except (ValueError, IndexError):
        return None


def license_allowed(license: str | None, allowed: Iterable[str]) -> bool:
    """Whether a (normalised) license or expression is allowed: OR = any branch, AND = every term."""
    if not license:
        return False
    node = _node(license)
    if node is None:
        return False
    allowed_set = allowed if isinstance(allowed, (set, frozenset)) else frozenset(allowed)
    return _evaluate(node, allowed_set.__contains__, any_for_or=True)


def is_copyleft(license: str | None) -> bool:
    """Whether a license or expression binds you to a copyleft term: OR = every branch, AND = any term."""
    if not license:
        return False
    node = _node(license)
    if node is None:
        return False
    return _evaluate(node, COPYLEFT_LICENSES.__contains__, any_for_or=False)


def license_from_classifiers(classifiers: Iterable[str]) -> str | None:
    """Trove classifiers ``License :: OSI Approved :: MIT License`` -> SPDX; several -> an OR expression."""
    found: list[str] = []
    for classifier in classifiers:
        parts = [p.strip() for p in classifier.split("::")]
        if len(parts) < 2 or parts[0] != "License":
            continue
        leaf = parts[-1]
        if leaf in ("OSI Approved", "Other/Proprietary License", "Freely Distributable", "DFSG approved"):
            continue
        spdx = normalize_license(leaf)
        if spdx is not None and spdx not in found:
            found.append(spdx)
    if not found:
        return None
    return found[0] if len(found) == 1 else " OR ".join(f"({f})" if " " in f else f for f in found)


def license_from_metadata(msg: Any) -> str | None:
    """License of a distribution from its core metadata (``importlib.metadata.metadata(name)``).

    Order: ``License-Expression`` (PEP 639), then the ``License`` field (a name, or sometimes the
    whole license text, which is then recognised with :func:`detect_license_text`), then the
    ``License ::`` classifiers.
    """
    expression = msg.get("License-Expression")
    if expression:
        spdx = normalize_license(str(expression))
        if spdx is not None:
            return spdx
    field = msg.get("License")
    if field:
        spdx = normalize_license(str(field))
        if spdx is not None:
            return spdx
    return license_from_classifiers(msg.get_all("Classifier") or [])


_LICENSE_FILE = re.compile(r"(^|/)(licen[cs]e|copying|unlicense)[^/]*$", re.IGNORECASE)


def license_from_distribution(dist: Any) -> str | None:
    """License of an ``importlib.metadata.Distribution``: its metadata, else its LICENSE/COPYING files."""
    spdx = license_from_metadata(dist.metadata)
    if spdx is not None:
        return spdx
    for file in dist.files or ():
        if _LICENSE_FILE.search(str(file)) and ".dist-info/" in str(file):
            try:
                with open(dist.locate_file(file), encoding="utf-8", errors="replace") as f:
                    text = f.read(_TEXT_HEAD_CHARS * 2)
            except OSError:
                continue
            spdx = detect_license_text(text)
            if spdx is not None:
                return spdx
    return None


def _earliest_rule(norm: str, rules: Any) -> str | None:
    """The license of the rule whose key phrase occurs first in ``norm`` (a result may be a
    function of the text and the match position, e.g. to tell BSD-2 from BSD-3)."""
    best: tuple[int, Any] | None = None
    for pattern, result in rules:
        m = pattern.search(norm)
        if m is not None and (best is None or m.start() < best[0]):
            best = (m.start(), result)
    if best is None:
        return None
    start, result = best
    return result(norm, start) if callable(result) else result


def _normalize_text(text: str) -> str:
    """Lower case, comment markers stripped at line starts, whitespace collapsed to one space."""
    text = re.sub(r"(?m)^[ \t]*(?:#+|//+|/?\*+/?|--|;+|\"\"\"|''')", " ", text)
    return " ".join(text.lower().split())


def _bsd_variant(text: str, start: int) -> str:
    window = text[start : start + 2500]
    if "all advertising materials mentioning" in window:
        return "BSD-4-Clause"
    if "neither the name" in window or "names of its contributors may" in window or (
        "name of the author may not be used" in window
    ) or "may not be used to endorse or promote" in window:
        return "BSD-3-Clause"
    return "BSD-2-Clause"


def _mit_variant(text: str, start: int) -> str:
    window = text[start : start + 1500]
    return "MIT" if "shall be included in all copies" in window else "MIT-0"


def _isc_variant(text: str, start: int) -> str:
    window = text[start : start + 600]
    return "ISC" if "provided that the above copyright notice" in window else "0BSD"


def _psf_variant(text: str, start: int) -> str:
    return "Python-2.0" if "beopen" in text and "cnri" in text else "PSF-2.0"


def _gpl_title(family: str) -> Any:
    def variant(text: str, start: int) -> str | None:
        m = re.compile(r"version (\d(?:\.\d)?)").match(text, text.index("version", start))
        version = m.group(1) if m else ""
        version = version if "." in version else f"{version}.0"
        spdx = f"{family}-{version}-only"
        return spdx if spdx in COPYLEFT_LICENSES else None

    return variant


def _gpl_notice(text: str, start: int) -> str | None:
    """'... is free software; you can redistribute it ... GNU [Lesser] General Public License ...'."""
    window = text[start : start + 500]
    m = re.search(r"gnu (affero |lesser |library )?general public license", window)
    if m is None:
        return None
    family = {"affero ": "AGPL", "lesser ": "LGPL", "library ": "LGPL"}.get(m.group(1) or "", "GPL")
    v = re.search(r"(?:version|v\.?) ?(\d(?:\.\d)?)\b", window[m.end() :])
    later = "any later version" in window or "or later" in window
    if v is None:
        version, later = {"AGPL": "3.0", "LGPL": "2.0", "GPL": "1.0"}[family], True
    else:
        version = v.group(1) if "." in v.group(1) else f"{v.group(1)}.0"
    spdx = f"{family}-{version}-{'or-later' if later else 'only'}"
    if spdx not in COPYLEFT_LICENSES:
        spdx = f"{family}-{version}-only"
    return spdx if spdx in COPYLEFT_LICENSES else None


# (pattern over normalised text, SPDX id or a function (text, match_start) -> id). The earliest
# match in the text wins, so a file that starts with one license and quotes others is read right.
_TEXT_RULES: tuple[tuple[re.Pattern[str], Any], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"gnu affero general public license version \d", _gpl_title("AGPL")),
        (r"gnu lesser general public license version \d", _gpl_title("LGPL")),
        (r"gnu library general public license version \d", _gpl_title("LGPL")),
        (r"gnu general public license version \d", _gpl_title("GPL")),
        (r"is free software[;:,]? you can redistribute it and/or modify it under the terms of the gnu", _gpl_notice),
        (r"apache license,? version 2\.0", "Apache-2.0"),
        (r"apache license version 1\.1", "Apache-1.1"),
        (r"permission is hereby granted, free of charge, to any person obtaining a copy of this software", _mit_variant),
        (r"permission to use, copy, modify, and/or distribute this software for any purpose", _isc_variant),
        (r"permission to use, copy, modify, and distribute this software for any purpose with or without fee", _isc_variant),
        (r"this license agreement is between the python software foundation", _psf_variant),
        (r"permission to use, copy, modify,? and distribute this software and its (?:associated )?documentation "
         r"for any purpose and without fee is hereby granted", "MIT-CMU"),
        (r"redistribution and use in source and binary forms, with or without modification, are permitted", _bsd_variant),
        (r"this is free and unencumbered software released into the public domain", "Unlicense"),
        (r"cc0 1\.0 universal", "CC0-1.0"),
        (r"python software foundation license version 2", _psf_variant),
        (r"psf license agreement", _psf_variant),
        (r"mozilla public license,? (?:version|v\.) ?2\.0", "MPL-2.0"),
        (r"mozilla public license,? (?:version|v\.) ?1\.1", "MPL-1.1"),
        (r"eclipse public license - v(?:ersion)? ?2\.0", "EPL-2.0"),
        (r"eclipse public license - v(?:ersion)? ?1\.0", "EPL-1.0"),
        (r"eclipse public license v(?:ersion)? ?2\.0", "EPL-2.0"),
        (r"eclipse public license v(?:ersion)? ?1\.0", "EPL-1.0"),
        (r"boost software license - version 1\.0", "BSL-1.0"),
        (r"altered source versions must be plainly marked as such", "Zlib"),
        (r"do what the fuck you want to public license", "WTFPL"),
        (r"common development and distribution license", "CDDL-1.0"),
        (r"european union public licen[cs]e v\. 1\.2", "EUPL-1.2"),
        (r"university of illinois/ncsa open source license", "NCSA"),
        (r"the universal permissive license \(upl\), version 1\.0", "UPL-1.0"),
    )
)


_TEXT_HEAD_CHARS = 6000


def detect_license_text(text: str) -> str | None:
    """Identify the body of a LICENSE / COPYING / LICENCE file by its key phrases (earliest wins)."""
    if not text:
        return None
    # The primary license starts near the top; bundled third-party licenses follow it.
    return _earliest_rule(_normalize_text(text[:_TEXT_HEAD_CHARS]), _TEXT_RULES)


def leading_text(content: str, n_lines: int) -> str:
    """The first ``n_lines`` newline-terminated lines of ``content``, without copying the rest."""
    if n_lines <= 0:
        return content[:0]
    rest = content.split("\n", n_lines)  # one C call: up to the n-th newline, the rest in one piece
    if len(rest) <= n_lines:
        return content
    return content[: len(content) - len(rest[-1])]


_SPDX_HEADER = re.compile(r"SPDX-License-Identifier:\s*(.+?)\s*(?:\*/|-->|\"\"\"|''')?\s*$", re.MULTILINE)

# Well-known per-file notices (matched on normalised text of the file's first lines).
_HEADER_RULES: tuple[tuple[re.Pattern[str], Any], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"is free software[;:,]? you can redistribute it and/or modify it under the terms of the gnu", _gpl_notice),
        (r"licensed under the gnu (?:affero |lesser |library )?general public license", _gpl_notice),
        (r"this source code form is subject to the terms of the mozilla public license,? v\. ?2\.0", "MPL-2.0"),
        (r"licensed under the apache license,? version 2\.0", "Apache-2.0"),
        (r"permission is hereby granted, free of charge, to any person obtaining a copy", _mit_variant),
        (r"(?:licensed|released|distributed) under the (?:terms of the )?mit license", "MIT"),
        (r"redistribution and use in source and binary forms, with or without modification, are permitted", _bsd_variant),
        (r"use of this source code is governed by a bsd-style license", "BSD-3-Clause"),
        (r"permission to use, copy, modify, and/or distribute this software for any purpose", _isc_variant),
        (r"made available under the terms of the eclipse public license v(?:ersion)? ?2\.0", "EPL-2.0"),
        (r"made available under the terms of the eclipse public license v(?:ersion)? ?1\.0", "EPL-1.0"),
        (r"this is free and unencumbered software released into the public domain", "Unlicense"),
    )
)


def file_header_license(content: str, max_lines: int = 50) -> str | None:
    """The license a file declares about itself in its first ``max_lines`` lines.

    An ``SPDX-License-Identifier:`` line wins; otherwise a well-known notice (GPL/LGPL/AGPL
    "This program is free software; you can redistribute it ...", Apache "Licensed under the
    Apache License, Version 2.0", MPL, MIT/BSD/ISC bodies) in the leading comments or docstring.
    Notices are full sentences, so a string that merely names a license (a classifier list in
    ``setup.py``) does not count.
    """
    if not content:
        return None
    head = leading_text(content, max_lines)
    m = _SPDX_HEADER.search(head)
    if m is not None:
        spdx = normalize_license(m.group(1).strip().strip("\"'"))
        if spdx is not None:
            return spdx
    low = head.lower()
    if "licen" not in low and "redistribut" not in low and "permission" not in low:
        return None  # fast path: no notice can match
    return _earliest_rule(_normalize_text(head), _HEADER_RULES)
