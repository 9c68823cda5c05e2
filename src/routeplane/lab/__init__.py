"""The lab: compute hosts, access nodes and VMs as network namespaces on one machine.

Everything the lab creates lives in namespaces named ``rp-…`` that it created itself; the
root namespace gets no lab address, no route into the lab, and no interface of the lab's.
Used by the kernel, contract and end-to-end tests and by demos.
"""
