"""soundweave.samplers"""
