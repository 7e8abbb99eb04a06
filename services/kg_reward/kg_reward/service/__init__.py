"""The FastAPI reward service: ``create_app(settings)`` builds it, ``kg-reward serve`` runs it."""
