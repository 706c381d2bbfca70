"""What each column of CTD's MEDIC disease vocabulary holds, checked by
content: the column count alone cannot catch a line that lost a middle
column (SlimMappings, the last, is optional), and its fields would shift
silently (ParentIDs read as the Definition, an id read as the DiseaseName).
"""
import re
from typing import List, Optional, Tuple

CTD_COLUMNS = (
    "DiseaseName", "DiseaseID", "AltDiseaseIDs", "Definition", "ParentIDs",
    "TreeNumbers", "ParentTreeNumbers", "Synonyms", "SlimMappings",
)
# What CTD's id and tree-number columns hold: "MESH:D003920", "OMIM:125853",
# "DO:DOID:0060395", the root "MESH:C"; "C14.907.489", "C16.131.260/C538288",
# "C04.182/C536528/604547", the root "C".
CTD_ID = re.compile(r"(?:[A-Z]+:){1,2}[A-Z]?\d*")
CTD_TREE = re.compile(r"[A-Z](?:\d{2}(?:\.\d{3})*)?(?:/[A-Z]?\d+)*")


def _split(cell: str) -> List[str]:
    return [part.strip() for part in cell.split("|") if part.strip()] if cell else []


def _all_match(pattern: "re.Pattern[str]", cell: str) -> bool:
    """Whether every |-separated part of a non-empty cell matches `pattern`."""
    parts = _split(cell)
    return bool(parts) and all(pattern.fullmatch(part) for part in parts)


def _ctd_cell_problem(column: str, cell: str) -> str:
    """What is wrong with one CTD cell after DiseaseID, or "".

    column (str): Its column name. cell (str): Its stripped text.
    RETURNS (str): The problem, "" if none.
    """
    if not cell:
        return ""
    if column in ("AltDiseaseIDs", "ParentIDs") and not _all_match(CTD_ID, cell):
        return "not |-separated ids"
    if column in ("TreeNumbers", "ParentTreeNumbers") and not _all_match(CTD_TREE, cell):
        return "not |-separated tree numbers like C14.907"
    if column == "Definition" and _all_match(CTD_ID, cell):
        return "holds ids"
    if column in ("Definition", "Synonyms") and _all_match(CTD_TREE, cell):
        return "holds tree numbers"
    return ""


def ctd_problem(cols: List[str]) -> Optional[Tuple[str, str]]:
    """(column, message) of the first CTD cell whose content does not fit its
    column, or None. The column count alone cannot catch a lost middle
    column, since SlimMappings is optional: the fields would shift silently
    (ParentIDs read as the Definition, an id read as the DiseaseName).

    cols (List[str]): The line's 8 or 9 tab-separated cells.
    RETURNS (Optional[Tuple[str, str]]): The problem, if any.
    """
    cells = dict(zip(CTD_COLUMNS, (c.strip() for c in cols)))
    name, disease_id = cells["DiseaseName"], cells["DiseaseID"]
    if not disease_id:
        return "DiseaseID", "missing DiseaseID"
    if not name:
        return "DiseaseName", "missing DiseaseName"
    if CTD_ID.fullmatch(name):
        return "DiseaseName", f"looks like an id, not a name ({name!r}); is a column missing?"
    if not CTD_ID.fullmatch(disease_id):
        return "DiseaseID", f"not an id like MESH:D003920 or OMIM:125853 ({disease_id[:60]!r}); is a column missing?"
    # In column order, so that the message names the first shifted column.
    for column in CTD_COLUMNS[2:8]:
        problem = _ctd_cell_problem(column, cells[column])
        if problem:
            return column, f"{problem} ({cells[column][:60]!r}); is a column missing?"
    return None
