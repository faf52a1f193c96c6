"""Medical monitoring (issue 12, part 2): vital signs, labs, withdrawal scales and urine drug
screens, read in canonical units and checked against the program's thresholds. Pure rules, no I/O.

- `CATALOG` names every monitoring measure the program records: its code, how its value is given
  (a quantity in UCUM units, a panel of components, a score, or a coded positive/negative result),
  its canonical unit and the units that convert to it. A unit that does not convert (lithium in
  mg/dL: a mass concentration, a different LOINC term) is refused, never guessed.
- `Thresholds` holds the program's alert thresholds (configurable: `IOPCARE_MONITORING_THRESHOLDS`;
  defaults and their sources in docs/clinical-thresholds.md). `alerts()` says which a reading
  crosses; each alert goes to the physician and the psychiatrist through careplan's crisis event.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace

from iopcare.careplan import codes
from iopcare.kit.errors import FieldViolations

UCUM = "http://unitsofmeasure.org"
VITAL_SIGNS = "vital-signs"
LABORATORY = "laboratory"
SURVEY = "survey"
PROCEDURE = "procedure"

#: How a measure's value is given.
QUANTITY, PANEL, SCORE, PRESENCE = "quantity", "panel", "score", "presence"

#: SNOMED CT results of a screen (valueCodeableConcept): 10828004 Positive, 260385009 Negative.
POSITIVE, NEGATIVE = "10828004", "260385009"
RESULTS = {POSITIVE: "positive", NEGATIVE: "negative"}

#: The roles a medical alert goes to.
MEDICAL_ROLES = ("physician", "psychiatrist")
#: Signs of medical instability in an eating disorder (docs/nutrition.md) reach the dietitian too.
INSTABILITY_ROLES = (*MEDICAL_ROLES, "dietitian")
EXAM = "exam"

Convert = Callable[[float], float]


def _times(factor: float) -> Convert:
    return lambda value: value * factor


def _fahrenheit(value: float) -> float:
    return (value - 32) * 5 / 9


@dataclass(frozen=True)
class Spec:
    """One monitoring measure the program records."""

    code: str
    display: str
    category: str
    kind: str
    #: The canonical UCUM unit (values are compared and trended in it), and the units converting
    #: to it (the canonical one included).
    unit: str = ""
    units: Mapping[str, Convert] = field(default_factory=dict)
    #: Plausible range in the canonical unit: outside it is a typing or unit error, refused.
    low: float | None = None
    high: float | None = None
    #: A panel's required components (their codes).
    components: tuple[str, ...] = ()
    #: A urine drug screen or withdrawal scale: a 42 CFR Part 2 record in an SUD program.
    substance_use: bool = False


def _same(unit: str, *aliases: str) -> dict[str, Convert]:
    return {u: _times(1.0) for u in (unit, *aliases)}


SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
BP_PANEL = "85354-9"
HEART_RATE = "8867-4"
BODY_WEIGHT = codes.BODY_WEIGHT
BODY_HEIGHT = "8302-2"
BMI = "39156-5"
TEMPERATURE = "8310-5"
POTASSIUM = "2823-3"
LITHIUM = "14334-7"
#: Valproate [Mass/volume] in Serum or Plasma (LOINC 4086-5; "4086-2" is not a LOINC code).
VALPROATE = "4086-5"
TSH = "3016-3"
HEMOGLOBIN = "718-7"
WBC = "6690-2"
PLATELETS = "777-3"
HCG_URINE = "2106-3"
QTC = "8636-3"
#: No LOINC code for the CIWA-Ar or COWS totals could be verified (docs/clinical-thresholds.md):
#: program codes (codes.MEASURE_SYSTEM) name them.
CIWA_AR = codes.CIWA_AR_TOTAL
COWS = codes.COWS_TOTAL
#: Orthostatic change and percent of expected body weight: program codes (docs/nutrition.md).
ORTHOSTATIC_HR = codes.ORTHOSTATIC_HR_CHANGE
ORTHOSTATIC_SYSTOLIC = codes.ORTHOSTATIC_SYSTOLIC_CHANGE
PERCENT_EBW = codes.PERCENT_EBW

_MMHG = _same("mm[Hg]")
_SPECS = [
    Spec(BP_PANEL, "Blood pressure panel", VITAL_SIGNS, PANEL, components=(SYSTOLIC, DIASTOLIC)),
    Spec(SYSTOLIC, "Systolic blood pressure", VITAL_SIGNS, QUANTITY, "mm[Hg]", _MMHG, 40, 300),
    Spec(DIASTOLIC, "Diastolic blood pressure", VITAL_SIGNS, QUANTITY, "mm[Hg]", _MMHG, 20, 200),
    Spec(
        HEART_RATE,
        "Heart rate",
        VITAL_SIGNS,
        QUANTITY,
        "/min",
        _same("/min", "{beats}/min"),
        10,
        300,
    ),
    Spec(
        BODY_WEIGHT,
        "Body weight",
        VITAL_SIGNS,
        QUANTITY,
        "kg",
        {"kg": _times(1.0), "g": _times(0.001), "[lb_av]": _times(0.45359237)},
        1,
        500,
    ),
    Spec(
        BODY_HEIGHT,
        "Body height",
        VITAL_SIGNS,
        QUANTITY,
        "cm",
        {"cm": _times(1.0), "m": _times(100.0), "[in_i]": _times(2.54)},
        30,
        275,
    ),
    Spec(BMI, "Body mass index (BMI)", VITAL_SIGNS, QUANTITY, "kg/m2", _same("kg/m2"), 5, 150),
    Spec(
        TEMPERATURE,
        "Body temperature",
        VITAL_SIGNS,
        QUANTITY,
        "Cel",
        {"Cel": _times(1.0), "[degF]": _fahrenheit},
        25,
        45,
    ),
    # Potassium and lithium are monovalent: 1 mEq/L is 1 mmol/L.
    Spec(
        POTASSIUM,
        "Potassium",
        LABORATORY,
        QUANTITY,
        "mmol/L",
        _same("mmol/L", "meq/L", "mEq/L"),
        0.5,
        15,
    ),
    Spec(
        LITHIUM,
        "Lithium",
        LABORATORY,
        QUANTITY,
        "mmol/L",
        {
            "mmol/L": _times(1.0),
            "meq/L": _times(1.0),
            "mEq/L": _times(1.0),
            "umol/L": _times(0.001),
        },
        0,
        10,
    ),
    Spec(VALPROATE, "Valproate", LABORATORY, QUANTITY, "ug/mL", _same("ug/mL", "mg/L"), 0, 1000),
    Spec(
        TSH,
        "Thyrotropin (TSH)",
        LABORATORY,
        QUANTITY,
        "m[IU]/L",
        _same("m[IU]/L", "u[IU]/mL"),
        0,
        500,
    ),
    Spec(
        HEMOGLOBIN,
        "Hemoglobin",
        LABORATORY,
        QUANTITY,
        "g/dL",
        {"g/dL": _times(1.0), "g/L": _times(0.1)},
        1,
        30,
    ),
    Spec(
        WBC, "Leukocytes (WBC)", LABORATORY, QUANTITY, "10*3/uL", _same("10*3/uL", "10*9/L"), 0, 500
    ),
    Spec(
        PLATELETS, "Platelets", LABORATORY, QUANTITY, "10*3/uL", _same("10*3/uL", "10*9/L"), 0, 3000
    ),
    Spec(HCG_URINE, "hCG (pregnancy test), urine", LABORATORY, PRESENCE),
    Spec(
        QTC,
        "QTc interval",
        PROCEDURE,
        QUANTITY,
        "ms",
        {"ms": _times(1.0), "s": _times(1000.0)},
        200,
        800,
    ),
    Spec(
        CIWA_AR,
        "CIWA-Ar total score",
        SURVEY,
        SCORE,
        "{score}",
        _same("{score}"),
        0,
        67,
        substance_use=True,
    ),
    Spec(
        COWS,
        "COWS total score",
        SURVEY,
        SCORE,
        "{score}",
        _same("{score}"),
        0,
        48,
        substance_use=True,
    ),
    Spec(
        ORTHOSTATIC_HR,
        "Orthostatic heart rate change (standing minus lying)",
        EXAM,
        QUANTITY,
        "/min",
        _same("/min", "{beats}/min"),
        -100,
        150,
    ),
    Spec(
        ORTHOSTATIC_SYSTOLIC,
        "Orthostatic systolic blood pressure change (standing minus lying)",
        EXAM,
        QUANTITY,
        "mm[Hg]",
        _MMHG,
        -150,
        100,
    ),
    Spec(PERCENT_EBW, "Percent of expected body weight", EXAM, QUANTITY, "%", _same("%"), 20, 300),
    # Urine drug screens, one Observation per substance (LOINC "[Presence] in Urine by Screen").
    *(
        Spec(code, f"{name} screen, urine", LABORATORY, PRESENCE, substance_use=True)
        for code, name in (
            ("19343-3", "Amphetamine"),
            ("14316-4", "Benzodiazepines"),
            ("18282-4", "Cannabinoids"),
            ("19359-9", "Cocaine"),
            ("59673-4", "Fentanyl"),
            ("19295-5", "Opiates"),
        )
    ),
]
CATALOG: dict[str, Spec] = {s.code: s for s in _SPECS}
#: Categories whose Observations must name a measure of the catalog.
MONITORED_CATEGORIES = frozenset({VITAL_SIGNS, LABORATORY})


@dataclass(frozen=True)
class Part:
    """A value as recorded: a number with its unit, or a coded result."""

    code: str | None
    value: float | None = None
    unit: str | None = None
    result: str | None = None  # a SNOMED CT code


@dataclass(frozen=True)
class Reading:
    """A monitoring measure in canonical units: its value, and each component's."""

    spec: Spec
    value: float | None
    components: dict[str, float]
    result: str | None = None


def read(
    code: str | None,
    categories: tuple[str, ...],
    value: Part,
    components: tuple[Part, ...],
    prefix: str = "fhir_json.Observation.",
) -> Reading | None:
    """The measure in canonical units (None when it is not a monitoring measure), or
    InvalidArgument naming each problem: unknown codes, units that do not convert, panels
    missing components, implausible values, results other than positive or negative."""
    problems = FieldViolations()
    spec = CATALOG.get(code or "")
    if spec is None:
        shaped = MONITORED_CATEGORIES & set(categories) or value.result is not None or components
        # A plain score of another instrument is recorded as before; a vital sign, a lab, a coded
        # result or a panel must be one the program knows (PHQ-9 items are careplan's own).
        if shaped and code not in codes.KNOWN_MEASURES:
            problems.add(
                f"{prefix}code",
                f"{code or 'no code'} is not a measure the program records: vital signs, labs "
                "and screens use the codes listed in docs/clinical-thresholds.md",
            )
        problems.raise_if_any("the measure cannot be recorded")
        return None
    if spec.category == VITAL_SIGNS and VITAL_SIGNS not in categories:
        problems.add(
            f"{prefix}category", "a vital sign needs category vital-signs (FHIR vital signs)"
        )
    reading: Reading | None = None
    if spec.kind == PANEL:
        reading = _panel(spec, components, prefix, problems)
    elif spec.kind == PRESENCE:
        if value.result not in RESULTS:
            problems.add(
                f"{prefix}valueCodeableConcept",
                f"{spec.display}: SNOMED CT {POSITIVE} (positive) or {NEGATIVE} (negative)",
            )
        else:
            reading = Reading(spec, None, {}, value.result)
    else:
        number = _canonical(spec, value, f"{prefix}valueQuantity", problems)
        if number is not None:
            reading = Reading(spec, number, {})
    problems.raise_if_any("the measure cannot be recorded")
    return reading


def _canonical(spec: Spec, part: Part, field_name: str, problems: FieldViolations) -> float | None:
    if part.value is None:
        problems.add(field_name, f"{spec.display} needs a value in {spec.unit}")
        return None
    convert = spec.units.get(part.unit or "")
    if convert is None:
        accepted = ", ".join(spec.units)
        problems.add(
            f"{field_name}.code",
            f"{spec.display} in {part.unit or 'no unit'} does not convert to {spec.unit} "
            f"(UCUM units accepted: {accepted})",
        )
        return None
    number = convert(part.value)
    if (spec.low is not None and number < spec.low) or (
        spec.high is not None and number > spec.high
    ):
        problems.add(
            f"{field_name}.value",
            f"{spec.display} {number:g} {spec.unit} is outside {spec.low:g}-{spec.high:g}",
        )
        return None
    return number


def _panel(
    spec: Spec, components: tuple[Part, ...], prefix: str, problems: FieldViolations
) -> Reading | None:
    values: dict[str, float] = {}
    for index, part in enumerate(components):
        inner = CATALOG.get(part.code or "")
        if inner is None or inner.code not in spec.components:
            problems.add(
                f"{prefix}component[{index}].code",
                f"{part.code or 'no code'} is not a component of the {spec.display} "
                f"({', '.join(spec.components)})",
            )
            continue
        number = _canonical(inner, part, f"{prefix}component[{index}].valueQuantity", problems)
        if number is not None:
            values[inner.code] = number
    missing = [
        f"{c} ({CATALOG[c].display})"
        for c in spec.components
        if c not in {p.code for p in components}
    ]
    if missing:
        problems.add(f"{prefix}component", f"the {spec.display} lacks {', '.join(missing)}")
    if len(values) != len(spec.components):
        return None
    return Reading(spec, None, values)


@dataclass(frozen=True)
class Thresholds:
    """The program's alert thresholds (canonical units); sources in docs/clinical-thresholds.md."""

    ciwa_ar_min: float = 10  # CIWA-Ar >= 10: withdrawal needing medication / a higher level
    cows_min: float = 13  # COWS >= 13: moderate opioid withdrawal or worse
    systolic_min: float = 180  # systolic >= 180 mm[Hg]: hypertensive urgency range
    heart_rate_below: float = 50  # heart rate < 50 /min: bradycardia
    lithium_above: float = 1.2  # lithium > 1.2 mmol/L: above the therapeutic range
    potassium_below: float = 3.0  # potassium < 3.0 mmol/L: moderate to severe hypokalemia
    qtc_above: float = 500  # QTc > 500 ms: high risk of torsades de pointes
    # Medical instability in an eating disorder (docs/nutrition.md: SAHM 2014, AAP 2021, DSM-5).
    bmi_below: float = 15  # BMI < 15 kg/m2: extreme severity
    ebw_percent_below: float = 75  # < 75 % of expected body weight
    orthostatic_hr_rise_above: float = 20  # heart rate up > 20 /min on standing
    orthostatic_systolic_drop_above: float = 20  # systolic down > 20 mm[Hg] on standing

    def with_overrides(self, overrides: Mapping[str, float]) -> Thresholds:
        """These thresholds with the program's settings applied; an unknown name is refused."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"unknown monitoring thresholds {unknown}: one of {', '.join(sorted(names))}"
            )
        return replace(self, **{k: float(v) for k, v in overrides.items()})


@dataclass(frozen=True)
class Alert:
    """A threshold crossed: what, by how much, and who must hear of it."""

    kind: str  # "medical"
    severity: str  # "urgent"
    measure: str  # the code
    value: float
    unit: str
    reason: str
    roles: tuple[str, ...] = MEDICAL_ROLES


def _shown(unit: str) -> str:
    """A unit as shown after a value: none for a score."""
    return "" if unit.startswith("{") else f" {unit}"


#: The threshold of each alerting measure: the `Thresholds` field holding its limit, how a value
#: crosses it, and what crossing it means. A blood pressure panel is checked by its systolic part.
#: An orthostatic drop is a change below minus the limit (`drop`).
_RULES: dict[str, tuple[str, str, str]] = {
    SYSTOLIC: ("systolic_min", ">=", "severe hypertension"),
    CIWA_AR: ("ciwa_ar_min", ">=", "alcohol withdrawal needing treatment or more care"),
    COWS: ("cows_min", ">=", "moderate opioid withdrawal or worse"),
    HEART_RATE: ("heart_rate_below", "<", "bradycardia"),
    LITHIUM: ("lithium_above", ">", "above the therapeutic range, risk of toxicity"),
    POTASSIUM: ("potassium_below", "<", "hypokalemia"),
    QTC: ("qtc_above", ">", "prolonged QTc, risk of torsades de pointes"),
    BMI: ("bmi_below", "<", "severe underweight, medical instability"),
    PERCENT_EBW: ("ebw_percent_below", "<", "severe malnutrition, medical instability"),
    ORTHOSTATIC_HR: ("orthostatic_hr_rise_above", ">", "orthostatic pulse rise, instability"),
    ORTHOSTATIC_SYSTOLIC: (
        "orthostatic_systolic_drop_above",
        "drop",
        "orthostatic hypotension, instability",
    ),
}
#: Signs of medical instability in an eating disorder: their alerts name the dietitian too.
INSTABILITY_SIGNS = frozenset(
    {HEART_RATE, POTASSIUM, BMI, PERCENT_EBW, ORTHOSTATIC_HR, ORTHOSTATIC_SYSTOLIC}
)
_CROSSES: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
    "drop": lambda value, limit: value < -limit,
}


def alerts(reading: Reading | None, limits: Thresholds) -> list[Alert]:
    """The thresholds `reading` crosses (empty when none)."""
    if reading is None:
        return []
    code, value = reading.spec.code, reading.value
    if code == BP_PANEL:
        code, value = SYSTOLIC, reading.components.get(SYSTOLIC)
    rule = _RULES.get(code)
    if rule is None or value is None:
        return []
    field_name, comparison, meaning = rule
    limit: float = getattr(limits, field_name)
    if not _CROSSES[comparison](value, limit):
        return []
    inner = CATALOG[code]
    shown = f"< -{limit:g}" if comparison == "drop" else f"{comparison} {limit:g}"
    why = f"{shown}: {meaning}"
    return [
        Alert(
            "medical",
            "urgent",
            code,
            value,
            inner.unit,
            f"{inner.display} {value:g}{_shown(inner.unit)} ({why})",
            INSTABILITY_ROLES if code in INSTABILITY_SIGNS else MEDICAL_ROLES,
        )
    ]
