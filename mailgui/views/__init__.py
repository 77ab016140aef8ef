"""Widgets and layouts only: no mail logic, no I/O. Controllers connect and fill them."""
