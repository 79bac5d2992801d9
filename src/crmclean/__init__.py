"""crmclean: clean CRM exports before they are migrated into a new CRM."""

__version__ = "0.1.0"
