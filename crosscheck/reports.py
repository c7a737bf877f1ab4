"""CI formats of a check (crosscheck.check.Result) and of a diagnosis (crosscheck.diagnose.Diagnosis): JUnit XML, one
test case per compared quantity, and a Markdown summary for a CI job's page (GitHub's $GITHUB_STEP_SUMMARY).

    about = About("seed", "8x8-k3-out1-N4-sum-float64-seed0", {"dtype": "float64", "seed": 0})
    write_atomically("report.xml", junit_xml(result, about, seconds=2.5))
    append_markdown("summary.md", markdown(result, about))
    # the run ended in an exception (exit 3 or 4): one test case carrying an <error> with the one-line message
    write_atomically("report.xml", junit_error_xml(message, 3, about))

A command of the command line reaches these through Outputs (--junit-xml PATH, --markdown PATH): the paths are
checked when it is made, before the run, and crosscheck.cli.error writes the error forms. Only the standard
library loads with this module; xml and the renderers (which load torch) load when a report is written.
"""

import os
import pathlib
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata

from netdesc.checks import InputError

LIMIT = 30  # Markdown tables with more rows list only those that differ or give no verdict
ERROR_TYPES = {3: "raised", 4: "internal"}  # the <error type="..."> of each exit code that writes a report
ERROR_TITLES = {3: "the code under test raised", 4: "crosscheck itself failed"}


def installed_version(distribution):
    """The installed version of a distribution (backprop-crosscheck, torch), read without importing it."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "unknown"


@dataclass(frozen=True)
class About:
    """What a command checked: the command ("seed", "verify", "diagnose", "train"), the case's id and properties
    (name -> value: dtype, seed, the injected derivation, ...). Test cases' classname: crosscheck.COMMAND.CASE."""

    command: str
    case: str = ""
    properties: dict = field(default_factory=dict)

    @property
    def classname(self):
        # A dot in a JUnit classname starts a package in CI's views: a description named v1.2 stays one class.
        return ".".join(["crosscheck", self.command] + ([self.case.replace(".", "_")] if self.case else []))

    def all_properties(self):
        """The properties, then the versions of crosscheck and torch -> [(name, text)]."""
        return [(k, "none" if v is None or v == "" else str(v)) for k, v in self.properties.items()] + [
            ("crosscheck", installed_version("backprop-crosscheck")), ("torch", installed_version("torch"))]


def case_id(subject):
    """A subject's case id: the slides' network's case (8x8-k3-out1-N4-sum-float64-seed0), or a described
    network's name, dtype and seed (lenet5-float64-seed0)."""
    case = getattr(subject, "case", None)
    return str(case) if case is not None else f"{subject.spec.name}-{subject.dtype}-seed{subject.seed}"


# --- JUnit XML ------------------------------------------------------------------------------------------

# Characters XML 1.0 cannot hold at all, not even escaped: shown as \xNN (\uNNNN) instead.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text):
    return _NOT_XML.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", str(text))


def _line(text):
    return " ".join(str(text).splitlines())


def _rule(dtype):
    from crosscheck.render import rule  # loads torch: only once a report of a check is written

    return rule(dtype)


def _row_outcome(row, dtype, injected, diagnosis, at):
    """A row -> None (passed), ("skipped", ...) for a row that gives no verdict, ("failure", ...) for one that
    differs: (element, message, type, text); the diagnosis' text goes into the row named `at`."""
    c = row.result
    if c.note:
        return "skipped", f"no verdict: {c.note}", "no-verdict", c.note
    if c.passed:
        return None
    message = f"{c.describe()}; {_rule(dtype)}"
    text = [c.describe(), _rule(dtype)] + ([f"injected wrong derivation: {injected}"] if injected else [])
    if c.name == at:
        from crosscheck.render import diagnosis_text

        text += ["", diagnosis_text(diagnosis)]
    return "failure", message, "mismatch", "\n".join(text)


def _diagnosed_row(result, quantity):
    """The name of the row a diagnosis of `quantity` belongs to: the failing row of that name, else the first
    failing row (a training run's rows are named "f at steps 1..k", its diagnosis "dE/df" at the step that
    stopped it), None where no row fails."""
    failing = [row.result.name for row in result.rows if not row.result.passed and not row.result.note]
    return quantity if quantity in failing else next(iter(failing), None)


def junit_xml(result, about, seconds=0.0, diagnosis=None, started=None, hostname=None):
    """A check's Result as JUnit XML -> text: one <testcase> per row (its name the quantity), a <failure
    type="mismatch"> with the report for a row that differs, <skipped type="no-verdict"> for an unstable one; with a
    diagnosis, its text in the failure of the quantity it names, else in the first that differs. seconds: the run's
    wall time; started: when it began (a datetime, default now); hostname: default this machine's."""
    at = None if diagnosis is None else _diagnosed_row(result, diagnosis.quantity)
    cases = [(row.result.name, _row_outcome(row, result.dtype, result.injected, diagnosis, at)) for row in result.rows]
    return _document(about, cases, seconds, started, hostname)


def junit_error_xml(message, code, about, seconds=0.0, started=None, hostname=None):
    """A run that ended in an exception (exit 3: the code under test raised; 4: crosscheck itself failed) as JUnit
    XML -> text: one <testcase> with an <error> carrying the one-line message, so that CI shows it."""
    return _document(about, [(f"crosscheck {about.command}", ("error", message, ERROR_TYPES[code], message))],
                     seconds, started, hostname)


def _document(about, cases, seconds, started, hostname):
    import socket
    from xml.etree import ElementTree as ET

    kinds = [outcome[0] for _, outcome in cases if outcome]
    counts = {"tests": len(cases), "failures": kinds.count("failure"), "errors": kinds.count("error")}
    counts = {k: str(v) for k, v in counts.items()}
    duration = f"{max(seconds, 0.0):.3f}"
    suites = ET.Element("testsuites", name="crosscheck", **counts, time=duration)
    started = started or datetime.now().astimezone()
    suite = ET.SubElement(suites, "testsuite", name=_xml_text(about.classname), **counts,
                          skipped=str(kinds.count("skipped")), time=duration,
                          timestamp=started.isoformat(timespec="seconds"), hostname=hostname or socket.gethostname())
    properties = ET.SubElement(suite, "properties")
    for name, value in about.all_properties():
        ET.SubElement(properties, "property", name=_xml_text(name), value=_xml_text(_line(value)))
    for name, outcome in cases:
        case = ET.SubElement(suite, "testcase", classname=_xml_text(about.classname), name=_xml_text(_line(name)))
        if outcome:
            element, message, kind, text = outcome
            ET.SubElement(case, element, message=_xml_text(_line(message)), type=kind).text = _xml_text(text)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# --- Markdown -------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")


def md(text):
    """Text as one line of Markdown that shows as written: its specials (| * _ ` [ ] < > ~ & # \\) escaped, control
    characters shown as \\xNN (a terminal printing the file runs none)."""
    return _xml_text(_MARKDOWN_SPECIAL.sub(r"\\\1", _line(text)))


def _verdict(result):
    """-> (the mark, the verdict's words)."""
    n, failed, unstable = len(result.rows), len(result.failed), len(result.unstable)
    if failed:
        return "❌", f"{failed} of {n} quantities differ"
    if not result.passed:
        return "❌", "nothing was compared"
    if unstable:
        return "✅", f"{n - unstable} of {n} quantities agree; {unstable} give no verdict"
    return "✅", f"all {n} quantities agree"


def _cells(row, layered):
    c = row.result
    errors = ["n/a", "n/a"] if c.problem else [f"{c.max_abs_error:.3e}", f"{c.max_rel_error:.3e}"]
    verdict = "unstable" if c.note else "ok" if c.passed else "MISMATCH"
    cells = ([row.where] if layered else []) + [row.quantity, str(c.shape), *errors, verdict]
    return "| " + " | ".join(md(cell) for cell in cells) + " |"


def _table(result):
    rows, n = result.rows, len(result.rows)
    shown = rows if n <= LIMIT else [row for row in rows if not row.passed or row.result.note]
    lines = []
    if shown:
        layered = any(row.where for row in rows)
        lines += ["| " + ("layer | " if layered else "") + "quantity | shape | max abs err | max rel err | result |",
                  "| " + ("--- | " if layered else "") + "--- | --- | ---: | ---: | --- |",
                  *(_cells(row, layered) for row in shown), ""]
    if len(shown) < n:
        lines += [f"{n - len(shown)} quantities that agree are not listed (above {LIMIT} rows the table lists only "
                  "the ones that differ or give no verdict).", ""]
    return lines


def _diagnosis_lines(d):
    from crosscheck.hypotheses import CLASSES

    if not d.wrong:
        return [f"No diagnosis: all {len(d.checked)} quantities agree with autograd (forward, backward from the loss, "
                "updates).", ""]
    lines = [f"**First wrong quantity: {md(d.quantity)}**, shape {md(d.first.shape)}; walked {len(d.checked)} "
             f"quantities in the order the computation makes them, the first {len(d.checked) - 1} agree.", "",
             f"**Class:** {md(CLASSES[d.classification.kind])} ({md(d.classification.kind)}): "
             f"{md(d.classification.detail)}", ""]
    if d.numerical is not None:  # "finite differences side with autograd: ..." as a sentence
        detail = d.numerical.detail
        lines += [f"{md(detail[:1].upper() + detail[1:])}.", ""]
    return lines


def markdown(result, about, diagnosis=None):
    """A check's Result as a Markdown summary -> text: a heading with the verdict, the subject and the tolerance rule,
    the injected derivation, with a diagnosis its localization and class, then a table of the rows (above LIMIT rows
    only those that differ or give no verdict, and how many agree). Ends with a blank line, so that summaries
    appended one after another stay apart."""
    from crosscheck.render import bound

    mark, verdict = _verdict(result)
    lines = [f"## {mark} crosscheck {md(about.command)}: {verdict}", "",
             f"{md(result.title)}, {result.dtype}: hand-derived NumPy against PyTorch autograd; pass when "
             f"`{bound(result.dtype)}`.", ""]
    if result.injected:
        lines += [f"Injected wrong derivation: {md(result.injected)}", ""]
    if diagnosis is not None:
        lines += _diagnosis_lines(diagnosis)
    return "\n".join(lines + _table(result)) + "\n"


def markdown_error(message, code, about):
    """A run that ended in an exception (exit 3 or 4) as a Markdown summary -> text: the heading and the message."""
    case = f"{md(about.case)}: " if about.case else ""
    return f"## ❌ crosscheck {md(about.command)}: {ERROR_TITLES[code]} (exit {code})\n\n{case}{md(message)}\n\n"


# --- files ----------------------------------------------------------------------------------------------

def output_path(text, option, replaced=False):
    """A path to write a report to, checked before the run -> pathlib.Path; InputError naming `option` for a
    directory, a folder that does not exist or cannot be written, or (`replaced`: the file is replaced whole)
    something there that is not a regular file (/dev/stdout, a pipe)."""
    path = pathlib.Path(text)
    if not text:
        raise InputError(f"{option}: got '', needs a file path")
    if path.is_dir():
        raise InputError(f"{option}: got {text!r}, a directory, needs a file path")
    if replaced and path.exists() and not path.is_file():
        raise InputError(f"{option}: got {text!r}, not a regular file, needs a file path (the report replaces it)")
    folder = path.parent
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise InputError(f"{option}: got {text!r}, needs a file in an existing folder; {str(folder)!r} {state}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option}: got {text!r}, needs a file in a folder it may write to")
    return path


def temporary_beside(path):
    """A new name for a temporary file in `path`'s folder: hidden, named after `path` (its first 40 characters, so
    that a file name of the most bytes a folder takes, 255, still leaves room), this process and 4 random bytes."""
    return path.with_name(f".{path.name[:40]}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_atomically(path, text, option="path"):
    """Write `text` to `path` through a temporary file in the same folder and os.replace: a reader sees the old file
    or the whole new one, never half of it. InputError naming `option` and the path where it cannot be written."""
    path = pathlib.Path(path)
    temporary = temporary_beside(path)
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise InputError(f"{option}: got {str(path)!r}, cannot write it: {err.strerror or err}") from None


def append_markdown(path, text, option="path"):
    """Append `text` to `path` (never truncate: $GITHUB_STEP_SUMMARY gathers every step's); "-" prints it.
    InputError naming `option` and the path where it cannot be written."""
    if str(path) == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise InputError(f"{option}: got {str(path)!r}, cannot append to it: {err.strerror or err}") from None


class Outputs:
    """A command's --junit-xml PATH and --markdown PATH ("-": stdout, in place of the table): checked when made,
    before the run (InputError, so bad input writes nothing); `about` names what is checked once it is known."""

    def __init__(self, command, junit=None, markdown=None, as_json=False):
        if markdown == "-" and as_json:
            raise InputError("--markdown: got '-' with --json, needs a file path (stdout holds the JSON)")
        self.junit = None if junit is None else output_path(junit, "--junit-xml", replaced=True)
        self.markdown = None if markdown is None else "-" if markdown == "-" else output_path(markdown, "--markdown")
        self.about = About(command)
        self.started, self._clock = datetime.now().astimezone(), time.perf_counter()

    @property
    def wanted(self):
        return self.junit is not None or self.markdown is not None

    def describe(self, case, **properties):
        """Name what the command checks, as soon as it is known: an error after this point carries it."""
        self.about = About(self.about.command, case, properties)

    def _seconds(self):
        return time.perf_counter() - self._clock

    def result(self, result, text, diagnosis=None):
        """Write the reports of a check -> the text to print: `text`, or the Markdown with --markdown -."""
        if self.junit is not None:
            write_atomically(self.junit, junit_xml(result, self.about, self._seconds(), diagnosis, self.started),
                             "--junit-xml")
        if self.markdown is None:
            return text
        summary = markdown(result, self.about, diagnosis)
        if self.markdown == "-":
            return summary.rstrip("\n")
        append_markdown(self.markdown, summary, "--markdown")
        return text

    def error(self, message, code):
        """Write the reports of a run that ended in an exception: exit 3 or 4 (crosscheck.cli.error's raised path)."""
        if self.junit is not None:
            write_atomically(self.junit, junit_error_xml(message, code, self.about, self._seconds(), self.started),
                             "--junit-xml")
        if self.markdown is not None:
            append_markdown(self.markdown, markdown_error(message, code, self.about), "--markdown")
