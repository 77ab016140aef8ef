"""Controllers: connect view signals to the model, hold the conditional logic, start jobs."""
