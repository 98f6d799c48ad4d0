//! The lab: executable versions of the impossibility results and bounds synod rests on.
