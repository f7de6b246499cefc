"""Store backends: the Store protocol and factory (base.py), one module per backend."""
