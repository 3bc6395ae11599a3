"""Teaching tooling, kept out of the core ``transformer`` package.

* ``transformer_teaching.labs``: the checks behind the labs in ``tutorials/labs``;
* ``transformer_teaching.quotes``: numbers quoted in the tutorials, tied to results files;
* ``transformer_teaching.positions`` and ``scaling``: measurements and figures that only
  the tutorials use.

It may import anything in ``transformer``; nothing in ``transformer`` imports it.
"""
