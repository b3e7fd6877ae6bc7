"""soundweave.pipelines"""
