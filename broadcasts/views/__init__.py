"""Thin views, one module per area: validate, call one service, redirect."""
