#!/usr/bin/perl
# Produce golden manifest.xml bytes with the real XML::Simple, exactly as xCAT's
# imgport.pm reads and writes them, so imgport's Rust reader/writer can be tested
# against the reference serializer without needing perl at test time.
#
# Usage:
#   scripts/xmlsimple-golden.pl IN.xml            # XMLin -> manifest_adapter -> XMLout, to stdout
#   scripts/xmlsimple-golden.pl --dump IN.xml     # Data::Dumper of what XMLin (+ adapter) gives
#   scripts/xmlsimple-golden.pl --raw IN.xml      # Data::Dumper of plain XMLin, no adapter
#
# Needs libxml-simple-perl (Debian/Ubuntu) or perl-XML-Simple (RHEL).
use strict;
use warnings;
use XML::Simple;
use Data::Dumper;

$Data::Dumper::Sortkeys = 1;
$Data::Dumper::Indent   = 1;

# Values come back from XMLin as character strings. xCAT writes DB values, which
# DBD::SQLite hands over as UTF-8 bytes, so its manifest.xml is UTF-8 on disk.
# Encode on output to reproduce that (without this, perl would print U+0080..U+00FF
# as single latin1 bytes).
binmode STDOUT, ':encoding(UTF-8)';

# xCAT 2.18.2 Schema.pm tabspec column lists (same as src/catalog/schema.rs).
my @osimage_cols = qw(imagename groups profile imagetype description provmethod
  rootfstype osdistroname osupdatename cfmdir osname osvers osarch synclists
  postscripts postbootscripts serverrole isdeletable kitcomponents environvar
  comments disable);
my @linuximage_cols = qw(imagename template boottarget addkcmdline pkglist pkgdir
  otherpkglist otherpkgdir exlist postinstall rootimgdir kerneldir nodebootif
  otherifce netdrivers kernelver krpmver permission dump crashkernelsize
  partitionfile driverupdatesrc comments disable);

# Copied logic of imgport.pm manifest_adapter (2.7 flat manifests -> 2.8 nested).
sub manifest_adapter {
    my $data = shift;
    if (exists($data->{osimage}) or exists($data->{linuximage})) {
        return 0;
    }
    my %colstodel;
    foreach my $col (@osimage_cols) {
        if (defined($data->{$col})) {
            $colstodel{$col} = 1;
            $data->{osimage}->{$col} = $data->{$col};
        }
    }
    foreach my $col (@linuximage_cols) {
        if (defined($data->{$col})) {
            $colstodel{$col} = 1;
            $data->{linuximage}->{$col} = $data->{$col};
        }
    }
    foreach my $col (keys %colstodel) {
        delete($data->{$col});
    }
    return 1;
}

my $mode = 'golden';
if (@ARGV && $ARGV[0] =~ /^--(dump|raw)$/) {
    $mode = $1;
    shift @ARGV;
}
my $file = shift @ARGV or die "usage: $0 [--dump|--raw] manifest.xml\n";

# imgport.pm: `$xml = new XML::Simple; $data = $xml->XMLin("$imgdir/manifest.xml")`
my $data = XML::Simple->new->XMLin($file);
if ($mode eq 'raw') {
    print Dumper($data);
    exit 0;
}
manifest_adapter($data);
if ($mode eq 'dump') {
    print Dumper($data);
    exit 0;
}

# imgport.pm make_bundle:
#   my $xml = new XML::Simple(RootName =>'xcatimage');
#   print FILE $xml->XMLout($attribs, noattr => 1, xmldecl => '<?xml version="1.0"?>');
my $xml = XML::Simple->new(RootName => 'xcatimage');
print $xml->XMLout($data, noattr => 1, xmldecl => '<?xml version="1.0"?>');
