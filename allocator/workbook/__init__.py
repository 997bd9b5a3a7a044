"""The run snapshot as an Excel workbook, for planners who prepare runs in a spreadsheet.

One sheet per snapshot list (spec/run-snapshot.md), plus a ``run`` sheet of key/value rows
(the run's id and name and each setting) and a protected ``README`` sheet that explains the
others in planners' words. `write_template` writes an empty workbook to fill in.

Reading never raises anything but `WorkbookError`, whose messages name the sheet and the
row as Excel numbers them ("Sheet 'workers', row 7: the id is empty"). Values are taken as
typed: nothing is neutralised or rewritten on import (a name that starts with ``=`` stays
that text), and cell types are only converted where the snapshot needs another type (a
worker id typed as the number 1001 becomes the text ``"1001"``).

This package is for snapshots only; result exports (CSV/XLSX of allocations) live elsewhere.
"""

from allocator.workbook.layout import PathOrBuffer, WorkbookError
from allocator.workbook.reader import xlsx_to_snapshot_dict
from allocator.workbook.writer import snapshot_to_xlsx, write_template

__all__ = ["PathOrBuffer", "WorkbookError", "snapshot_to_xlsx", "xlsx_to_snapshot_dict", "write_template"]
