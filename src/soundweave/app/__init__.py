"""soundweave.app"""
