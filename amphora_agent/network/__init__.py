"""Amphora networking: the HAProxy namespace, plugged interfaces, their files and rules."""
