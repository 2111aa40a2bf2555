"""DRF endpoints: one APIView per operation (usage.py, billing.py)."""
