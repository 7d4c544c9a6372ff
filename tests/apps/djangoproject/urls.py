from django.http import HttpResponse
from django.urls import path


def hello(request):
    return HttpResponse("Hello from Django")


def boom(request):
    raise ZeroDivisionError("django view failed on purpose")


urlpatterns = [path("hello", hello), path("boom", boom)]
