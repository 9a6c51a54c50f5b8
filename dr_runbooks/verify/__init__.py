"""Replication verification: is every current chart version of the primary archive on the replica, and nothing else?"""
