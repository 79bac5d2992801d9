"""Writing outputs: target CRM layouts, spreadsheet-safe files, atomic publish, the report."""
