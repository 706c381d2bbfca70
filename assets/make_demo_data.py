"""Generate the small synthetic biomedical demo corpus in this folder.

    python assets/make_demo_data.py [--out-dir assets]

Writes (deterministically, fixed seed):

- demo_train.jsonl, demo_dev.jsonl, demo_test.jsonl: one sentence per line,
  {"text": ..., "spans": [{"start", "end", "label", "kb_id"}]}, labels
  "Chemical" and "Disease", ids from demo_kb.jsonl.
- demo_kb.jsonl: one entity per line {"id", "name", "aliases", "description",
  "type", "prior"}; "prior" is the entity's share of the mentions of its type
  in the sampling weights the generator uses.
- demo_raw.txt: unannotated sentences, one per line.

The sentences are synthetic, written from templates and common public drug
and disease names; they are not taken from any corpus and state no medical
facts. To make the demo test generalisation, some entities and templates are
held out of the training split: dev and test mix seen and unseen names and
sentence frames. Mentions follow BC5CDR conventions: mostly lower case, an
abbreviation introduced in parentheses is a mention of its own, and a name
inside "X-induced" is a mention even though it is part of a larger token.
"""
import argparse
import json
import random
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

SEED = 1234
N_TRAIN, N_DEV, N_TEST, N_RAW = 300, 80, 80, 50

# (name as written in text, abbreviation or None, other aliases, description)
CHEMICALS: List[Tuple[str, Optional[str], List[str], str]] = [
    ("aspirin", "ASA", ["acetylsalicylic acid"], "A salicylate used to relieve pain and fever and to inhibit platelet aggregation."),
    ("cisplatin", "CDDP", ["cis-diamminedichloroplatinum"], "A platinum-based anticancer drug that cross-links DNA."),
    ("doxorubicin", None, ["adriamycin"], "An anthracycline antibiotic used in cancer chemotherapy."),
    ("5-fluorouracil", "5-FU", ["fluorouracil"], "A pyrimidine analogue used to treat solid tumours."),
    ("paracetamol", None, ["acetaminophen"], "An analgesic and antipyretic drug sold over the counter."),
    ("ibuprofen", None, [], "A nonsteroidal anti-inflammatory drug used for pain and inflammation."),
    ("lithium", None, ["lithium carbonate"], "A mood stabiliser used mainly in bipolar disorder."),
    ("haloperidol", None, [], "A typical antipsychotic drug of the butyrophenone class."),
    ("cyclophosphamide", "CTX", [], "An alkylating agent used in chemotherapy and immunosuppression."),
    ("methotrexate", "MTX", [], "An antifolate used against cancer and autoimmune disease."),
    ("warfarin", None, [], "An oral anticoagulant that antagonises vitamin K."),
    ("heparin", None, ["unfractionated heparin"], "An injectable anticoagulant polysaccharide."),
    ("morphine", None, ["morphine sulfate"], "An opioid analgesic derived from the opium poppy."),
    ("naloxone", None, [], "An opioid receptor antagonist used to reverse opioid overdose."),
    ("clonidine", None, [], "An alpha-2 adrenergic agonist that lowers blood pressure."),
    ("amiodarone", None, [], "A class III antiarrhythmic drug."),
    ("digoxin", None, [], "A cardiac glycoside used in heart failure and atrial fibrillation."),
    ("gentamicin", None, [], "An aminoglycoside antibiotic."),
    ("vancomycin", None, [], "A glycopeptide antibiotic used against Gram-positive bacteria."),
    ("amphotericin B", "AmB", [], "A polyene antifungal drug."),
    ("tacrolimus", None, ["FK506"], "A calcineurin inhibitor used to prevent transplant rejection."),
    ("cyclosporine", "CsA", ["cyclosporin A", "ciclosporin"], "A calcineurin inhibitor immunosuppressant."),
    ("prednisone", None, [], "A synthetic corticosteroid taken by mouth."),
    ("dexamethasone", None, [], "A potent synthetic glucocorticoid."),
    ("metformin", None, [], "A biguanide that lowers blood glucose in type 2 diabetes."),
    ("insulin", None, [], "A peptide hormone that lowers blood glucose."),
    ("lidocaine", None, ["lignocaine"], "A local anaesthetic and class Ib antiarrhythmic."),
    ("propranolol", None, [], "A non-selective beta blocker."),
    ("nifedipine", None, [], "A dihydropyridine calcium channel blocker."),
    ("captopril", None, [], "An angiotensin-converting enzyme inhibitor."),
    ("furosemide", None, ["frusemide"], "A loop diuretic."),
    ("valproic acid", "VPA", ["valproate", "sodium valproate"], "An anticonvulsant and mood stabiliser."),
    ("carbamazepine", "CBZ", [], "An anticonvulsant used in epilepsy and trigeminal neuralgia."),
    ("phenytoin", None, [], "An anticonvulsant that blocks sodium channels."),
    ("cocaine", None, [], "A stimulant alkaloid and local anaesthetic."),
    ("nicotine", None, [], "An alkaloid stimulant found in tobacco."),
    ("streptozotocin", "STZ", [], "A glucosamine-nitrosourea used to induce diabetes in animal models."),
    ("isoproterenol", None, ["isoprenaline"], "A non-selective beta adrenergic agonist."),
    ("tamoxifen", None, [], "A selective oestrogen receptor modulator used in breast cancer."),
    ("sirolimus", None, ["rapamycin"], "An mTOR inhibitor immunosuppressant."),
    ("ketamine", None, [], "A dissociative anaesthetic that blocks NMDA receptors."),
    ("puromycin aminonucleoside", "PAN", [], "An aminonucleoside used to induce nephrosis in rats."),
]

DISEASES: List[Tuple[str, Optional[str], List[str], str]] = [
    ("hypertension", "HTN", ["high blood pressure"], "Persistently raised arterial blood pressure."),
    ("hypotension", None, ["low blood pressure"], "Abnormally low arterial blood pressure."),
    ("renal failure", None, ["kidney failure", "renal insufficiency"], "Loss of the kidneys' ability to filter the blood."),
    ("acute kidney injury", "AKI", [], "A sudden decline in kidney function over hours to days."),
    ("chronic kidney disease", "CKD", [], "A gradual loss of kidney function over months or years."),
    ("myocardial infarction", "MI", ["heart attack"], "Death of heart muscle caused by blocked blood flow."),
    ("congestive heart failure", "CHF", ["heart failure"], "Failure of the heart to pump enough blood for the body's needs."),
    ("cardiac arrhythmia", None, ["arrhythmia", "arrhythmias"], "An abnormal heart rhythm."),
    ("atrial fibrillation", "AF", [], "An irregular, often rapid heart rhythm starting in the atria."),
    ("hepatotoxicity", None, ["liver injury", "hepatic injury"], "Damage to the liver caused by a drug or chemical."),
    ("hepatitis", None, [], "Inflammation of the liver."),
    ("nephrotoxicity", None, ["kidney damage"], "Damage to the kidneys caused by a drug or chemical."),
    ("cardiotoxicity", None, [], "Damage to the heart muscle caused by a drug or chemical."),
    ("hearing loss", None, ["ototoxicity", "deafness"], "Partial or total inability to hear."),
    ("neutropenia", None, [], "An abnormally low count of neutrophils in the blood."),
    ("thrombocytopenia", None, [], "An abnormally low platelet count."),
    ("anemia", None, ["anaemia"], "A shortage of red blood cells or haemoglobin."),
    ("agranulocytosis", None, [], "A severe lack of granulocytes in the blood."),
    ("seizures", None, ["seizure", "convulsions"], "Episodes of abnormal electrical activity in the brain."),
    ("epilepsy", None, [], "A brain disorder with recurrent unprovoked seizures."),
    ("Parkinson's disease", "PD", [], "A progressive movement disorder caused by loss of dopamine neurons."),
    ("tardive dyskinesia", "TD", [], "Involuntary repetitive movements after long-term antipsychotic use."),
    ("depression", None, ["major depression"], "A mood disorder with persistent low mood and loss of interest."),
    ("schizophrenia", None, [], "A chronic psychotic disorder affecting thought and perception."),
    ("bipolar disorder", None, ["manic depression"], "A mood disorder with episodes of mania and depression."),
    ("diabetes mellitus", None, ["diabetes"], "A metabolic disease with chronically high blood glucose."),
    ("hypoglycemia", None, ["hypoglycaemia"], "An abnormally low blood glucose level."),
    ("lactic acidosis", None, [], "A build-up of lactate that lowers blood pH."),
    ("breast cancer", None, ["breast carcinoma"], "A malignant tumour arising in breast tissue."),
    ("lung cancer", None, ["lung carcinoma"], "A malignant tumour arising in the lung."),
    ("leukemia", None, ["leukaemia"], "A cancer of blood-forming cells in the bone marrow."),
    ("rheumatoid arthritis", "RA", [], "A chronic autoimmune disease that inflames the joints."),
    ("multiple sclerosis", "MS", [], "An autoimmune disease that damages the myelin of the central nervous system."),
    ("stroke", None, ["cerebral infarction"], "Brain damage caused by interrupted blood supply or bleeding."),
    ("pulmonary embolism", "PE", [], "Blockage of a lung artery, usually by a blood clot."),
    ("deep vein thrombosis", "DVT", [], "A blood clot in a deep vein, usually of the leg."),
    ("hemorrhagic cystitis", None, ["haemorrhagic cystitis"], "Bleeding inflammation of the bladder lining."),
    ("Stevens-Johnson syndrome", "SJS", [], "A severe skin and mucous membrane reaction, usually to a drug."),
    ("rhabdomyolysis", None, [], "Breakdown of skeletal muscle releasing its contents into the blood."),
    ("neuropathic pain", None, [], "Pain caused by damage to the nervous system."),
    ("proteinuria", None, [], "Excess protein in the urine."),
    ("polyarteritis nodosa", "PAN", [], "A necrotising inflammation of medium-sized arteries."),
    ("cardiomyopathy", None, [], "A disease of the heart muscle that impairs its pumping."),
    ("hyperkalemia", None, ["hyperkalaemia"], "An abnormally high potassium level in the blood."),
]

# Slots: {chem}, {chem2}, {dis}, {dis2}; a capitalised slot ({Chem}) starts a
# sentence; "*" ({chem*}) forbids the "name (ABBR)" form, for slots inside a
# larger word. {n}, {m}, {pct}, {dose}, {age}, {dur} are numbers and units.
TEMPLATES: List[str] = [
    "{Chem} is widely used in the treatment of {dis}.",
    "Patients receiving {chem} developed {dis} within {n} days.",
    "We report a case of {dis} associated with {chem} therapy.",
    "{Chem*}-induced {dis} was observed in {n} of {m} rats.",
    "The incidence of {dis} was higher in the {chem} group than in the placebo group.",
    "Co-administration of {chem} and {chem2} reduced the risk of {dis}.",
    "{Dis} is a known adverse effect of {chem}.",
    "A {age}-year-old woman with a history of {dis} was admitted after an overdose of {chem}.",
    "Treatment with {chem} ({dose}) did not affect blood pressure or heart rate.",
    "There was no evidence of {dis} in patients treated with {chem}.",
    "Serum levels of {chem} were measured in {n} patients with {dis}.",
    "{Chem} attenuated {dis} in a mouse model.",
    "These findings suggest that {chem} may protect against {dis}.",
    "The risk of {dis} increased with the cumulative dose of {chem}.",
    "{Dis} and {dis2} were the most frequent complications.",
    "Discontinuation of {chem} led to resolution of {dis}.",
    "In this randomized trial, {chem} was compared with {chem2} in {n} patients with {dis}.",
    "The mechanism by which {chem} causes {dis} remains unclear.",
    "Heart rate and body weight did not differ between the groups.",
    "{Chem} toxicity manifested as {dis} and {dis2}.",
    "Pretreatment with {chem} prevented {chem2*}-induced {dis}.",
    "We investigated whether {chem} exacerbates {dis} in elderly patients.",
    "Two patients developed severe {dis} after intravenous {chem}.",
    "Long-term use of {chem} has been linked to {dis}.",
    "The patient was diagnosed with {dis} and started on {chem}.",
    "No cases of {dis} were reported during {chem} therapy.",
    "{Chem} plasma concentrations correlated with the severity of {dis}.",
    "Animals were given {chem} ({dose}) for {dur}.",
    "Symptoms of {dis} improved after switching from {chem} to {chem2}.",
    "Blood samples were collected at baseline and after {n} hours.",
    "Rats treated with {chem} showed signs of {dis}, whereas controls did not.",
    "Our results indicate that {dis} is a rare but serious complication of {chem}.",
    # Held out of the training split (dev/test only):
    "A history of {dis} was an exclusion criterion.",
    "{Chem} is contraindicated in patients with {dis}.",
    "The combination of {chem} with {chem2} caused {dis} in {pct}% of cases.",
    "Clinicians should monitor for {dis} when prescribing {chem}.",
    "{Dis} following {chem} administration: a case report.",
    "Withdrawal of {chem} resulted in rapid improvement of {dis} and {dis2}.",
    "Neither {chem} nor {chem2} was associated with {dis}.",
    "{Dis} developed in {n} patients ({pct}%) receiving {chem} for {dur}.",
    "Mean arterial pressure fell by {pct}% during the infusion.",
]
N_HELD_OUT_TEMPLATES = 9
# Every HELD_OUT_EVERY-th entity of each type appears only in dev and test.
HELD_OUT_EVERY = 5
# Title case for the case-report template (length-preserving).
TITLE_TEMPLATES = {"{Dis} following {chem} administration: a case report."}
_SMALL_WORDS = {"a", "an", "and", "of", "in", "with", "for", "the", "to", "or", "nor", "by", "after"}
_SLOT_RE = re.compile(r"\{(\w+\*?)\}")

Entity = Dict[str, object]


def build_kb() -> List[Entity]:
    """The demo KB: ids DEMO:C#### for chemicals and DEMO:D#### for diseases.

    RETURNS (List[Entity]): The entities, with sampling weights in "_weight".
    """
    kb: List[Entity] = []
    for label, prefix, rows in (("Chemical", "C", CHEMICALS), ("Disease", "D", DISEASES)):
        # Zipf-like popularity: a few entities are mentioned far more often.
        weights = [1.0 / (rank + 1) ** 0.6 for rank in range(len(rows))]
        total = sum(weights)
        for i, (name, abbr, aliases, description) in enumerate(rows):
            # Names are capitalised as in curated vocabularies; texts mostly
            # write them in lower case (a case-folded lookup is needed).
            canonical = name[0].upper() + name[1:]
            all_aliases = aliases + ([abbr] if abbr else [])
            kb.append(
                {
                    "id": f"DEMO:{prefix}{i + 1:04d}",
                    "name": canonical,
                    "aliases": all_aliases,
                    "description": description,
                    "type": label,
                    "prior": round(weights[i] / total, 4),
                    "_surface": name,
                    "_abbr": abbr,
                    "_other": aliases,
                    "_weight": weights[i],
                    "_held_out": i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1,
                }
            )
    return kb


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:] if text[:1].islower() else text


def _title_case(text: str) -> str:
    words = text.split(" ")
    out = []
    for i, word in enumerate(words):
        if i > 0 and word.lower() in _SMALL_WORDS:
            out.append(word)
        else:
            out.append(_capitalize(word))
    return " ".join(out)


class Generator:
    """Samples annotated sentences from the templates and the KB."""

    def __init__(self, kb: Sequence[Entity], seed: int) -> None:
        self.rng = random.Random(seed)
        self.kb = kb

    def pick_entity(self, label: str, held_out: str, exclude: Sequence[Entity]) -> Entity:
        # held_out: "no" (train), "mix" (dev/test: some unseen names)
        pool = [e for e in self.kb if e["type"] == label and e not in exclude]
        if held_out == "no":
            pool = [e for e in pool if not e["_held_out"]]
        elif self.rng.random() < 0.25:
            pool = [e for e in pool if e["_held_out"]]
        return self.rng.choices(pool, weights=[float(e["_weight"]) for e in pool])[0]

    def surface(self, entity: Entity, plain: bool) -> List[Tuple[str, bool]]:
        """The mention text: [(text, is_mention)] pieces, e.g. "name (ABBR)"."""
        rng = self.rng
        name, abbr, other = entity["_surface"], entity["_abbr"], entity["_other"]
        r = rng.random()
        if abbr and not plain and r < 0.2:
            return [(str(name), True), (" (", False), (str(abbr), True), (")", False)]
        if abbr and r < 0.3:
            return [(str(abbr), True)]
        if other and r < 0.55:
            return [(rng.choice(list(other)), True)]  # type: ignore[arg-type]
        return [(str(name), True)]

    def fill_number(self, slot: str) -> str:
        rng = self.rng
        if slot == "n":
            return str(rng.choice([2, 3, 4, 5, 6, 8, 10, 12, 14, 21, 24, 30, 48]))
        if slot == "m":
            return str(rng.choice([20, 24, 30, 40, 48, 60]))
        if slot == "pct":
            return str(rng.choice([3, 5, 8, 12, 15, 18, 22, 35]))
        if slot == "age":
            return str(rng.randint(19, 86))
        if slot == "dose":
            return rng.choice(["10 mg/kg", "0.5 mg/kg", "2 mg/kg per day", "100 mg daily", "5 micrograms/kg", "40 mg/m2"])
        if slot == "dur":
            return rng.choice(["two weeks", "4 weeks", "3 months", "six months", "10 days", "one year"])
        raise KeyError(slot)

    def sentence(self, template: str, held_out: str) -> Dict[str, object]:
        pieces: List[Tuple[str, Optional[Entity]]] = []
        used: List[Entity] = []
        pos = 0
        for match in _SLOT_RE.finditer(template):
            pieces.append((template[pos : match.start()], None))
            slot = match.group(1)
            plain = slot.endswith("*")
            base = slot.rstrip("*")
            kind = base.lower().rstrip("2")
            if kind in ("chem", "dis"):
                label = "Chemical" if kind == "chem" else "Disease"
                entity = self.pick_entity(label, held_out, used)
                used.append(entity)
                parts = self.surface(entity, plain)
                if base[0].isupper():
                    parts[0] = (_capitalize(parts[0][0]), parts[0][1])
                for text, is_mention in parts:
                    pieces.append((text, entity if is_mention else None))
            else:
                pieces.append((self.fill_number(base), None))
            pos = match.end()
        pieces.append((template[pos:], None))
        text = "".join(t for t, _ in pieces)
        if template in TITLE_TEMPLATES:
            titled = _title_case(text)
            assert len(titled) == len(text)
            # Keep the mention text case-varied but the same length.
            text = titled
        spans = []
        offset = 0
        for piece, entity in pieces:
            if entity is not None:
                spans.append(
                    {
                        "start": offset,
                        "end": offset + len(piece),
                        "label": entity["type"],
                        "kb_id": entity["id"],
                    }
                )
            offset += len(piece)
        return {"text": text, "spans": spans}


def make_split(gen: Generator, n: int, templates: Sequence[str], held_out: str, seen: set) -> List[Dict[str, object]]:
    records = []
    while len(records) < n:
        record = gen.sentence(gen.rng.choice(list(templates)), held_out)
        if record["text"] in seen:
            continue
        seen.add(record["text"])
        records.append(record)
    return records


def main(out_dir: Path) -> None:
    kb = build_kb()
    gen = Generator(kb, SEED)
    train_templates = TEMPLATES[:-N_HELD_OUT_TEMPLATES]
    seen: set = set()
    splits = {"train": make_split(gen, N_TRAIN, train_templates, "no", seen)}
    for name, n in (("dev", N_DEV), ("test", N_TEST)):
        # Half the sentences use a held-out template.
        half = make_split(gen, n // 2, TEMPLATES[-N_HELD_OUT_TEMPLATES:], "mix", seen)
        rest = make_split(gen, n - n // 2, train_templates, "mix", seen)
        records = half + rest
        gen.rng.shuffle(records)
        splits[name] = records
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        with (out_dir / f"demo_{name}.jsonl").open("w", encoding="utf8") as file_:
            for record in records:
                file_.write(json.dumps(record, ensure_ascii=False) + "\n")
    raw = make_split(gen, N_RAW, TEMPLATES, "mix", seen)
    (out_dir / "demo_raw.txt").write_text("".join(r["text"] + "\n" for r in raw), encoding="utf8")  # type: ignore[operator]
    with (out_dir / "demo_kb.jsonl").open("w", encoding="utf8") as file_:
        for entity in kb:
            public = {k: v for k, v in entity.items() if not k.startswith("_")}
            file_.write(json.dumps(public, ensure_ascii=False) + "\n")
    for name, records in splits.items():
        n_spans = sum(len(r["spans"]) for r in records)  # type: ignore[arg-type]
        print(f"{name}: {len(records)} sentences, {n_spans} mentions")
    print(f"kb: {len(kb)} entities; raw: {len(raw)} sentences")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    main(parser.parse_args().out_dir)
