"""soundweave.models"""
