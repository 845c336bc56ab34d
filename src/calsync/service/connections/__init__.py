"""Connections: connecting accounts, their sync configuration, disconnecting and retiring."""
