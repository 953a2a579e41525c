"""publisher/platforms"""
