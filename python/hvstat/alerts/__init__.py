"""Alerts: threshold rules on the node's, containers' and VMs' samples (rules.py), their state
machine (engine.py) and the webhook and email notifiers (notify.py). See docs/alerts.md."""
