"""The model: plain Python, no widgets, testable without a QApplication."""
